"""The CrossGuard policy pack rules and the offline policy check."""
