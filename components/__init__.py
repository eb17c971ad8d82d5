"""Declaring an inference stack: the spec, sizing and cost, the Pulumi components, the preview."""
