"""The pack's rules, one module each. `ALL_RULES` is the order the pack declares them in."""

from __future__ import annotations

from inferstack.policies.rule import Rule
from inferstack.policies.rules import (
    async_spot_durability,
    bounded_gpu_capacity,
    bucket_public_access_prevention,
    cloudrun_bounded_gpu_service,
    cloudrun_concurrency_fills_batch,
    cloudrun_private_gpu_service,
    cold_start_within_hold_timeout,
    demand_signal_autoscaling,
    gpu_capacity_follows_demand,
    image_pinned_by_digest,
    inference_security,
    no_spot_for_realtime,
    private_results_bucket,
    pubsub_dead_letter_bindings,
    queue_delay_within_budget,
    sagemaker_async_error_destination,
    sagemaker_async_wake,
    sagemaker_bounded_capacity,
    sagemaker_demand_scaling,
    sagemaker_realtime_zero,
    scale_to_zero_needs_wake_path,
    scoped_inference_identities,
    spot_interruption_handling,
)

RULE_MODULES = (
    no_spot_for_realtime,
    scale_to_zero_needs_wake_path,
    demand_signal_autoscaling,
    bounded_gpu_capacity,
    queue_delay_within_budget,
    async_spot_durability,
    cold_start_within_hold_timeout,
    inference_security,
    pubsub_dead_letter_bindings,
    bucket_public_access_prevention,
    spot_interruption_handling,
    scoped_inference_identities,
    private_results_bucket,
    image_pinned_by_digest,
    gpu_capacity_follows_demand,
    sagemaker_bounded_capacity,
    sagemaker_realtime_zero,
    sagemaker_demand_scaling,
    sagemaker_async_error_destination,
    sagemaker_async_wake,
    cloudrun_bounded_gpu_service,
    cloudrun_private_gpu_service,
    cloudrun_concurrency_fills_batch,
)

ALL_RULES: tuple[Rule, ...] = tuple(module.RULE for module in RULE_MODULES)

__all__ = ["ALL_RULES", "RULE_MODULES"]
