"""Planning: the spec, sizing from a measured profile, cost and prices, schedules, GPU tables.

Pure Python, no Pulumi and no I/O beyond reading the shipped tables: everything a target needs to
know about a service is decided here, once, and carried by the plan.
"""
