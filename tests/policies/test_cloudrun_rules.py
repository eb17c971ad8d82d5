"""The Cloud Run rules on wire-form resources: a compliant service, one changed field per test."""

from __future__ import annotations

from typing import Any

from inferstack.policies.resources import UNKNOWN, Resource
from inferstack.policies.rules import (
    cloudrun_bounded_gpu_service,
    cloudrun_concurrency_fills_batch,
    cloudrun_private_gpu_service,
)
from tests.policies.builders import resource

SERVICE = "gcp:cloudrunv2/service:Service"
MEMBER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
BINDING = "gcp:cloudrunv2/serviceIamBinding:ServiceIamBinding"
POOL = "gcp:cloudrunv2/workerPool:WorkerPool"
CONFIG = {"maxGpuReplicas": 64}


def service(
    *, gpu: bool = True, maximum: float | None = 4.0, concurrency: float = 48.0, **props: Any
) -> Resource:
    template: dict[str, Any] = {
        "maxInstanceRequestConcurrency": concurrency,
        "containers": [
            {
                "image": "img",
                "envs": [{"name": "INFERSTACK_MAX_BATCH_SIZE", "value": "32"}],
                "resources": {"limits": {"cpu": "4", **({"nvidia.com/gpu": "1"} if gpu else {})}},
            }
        ],
    }
    if maximum is not None:
        template["scaling"] = {"maxInstanceCount": maximum}
    return resource(SERVICE, "svc", {"name": "svc", "template": template, **props})


def invoker(member: str, name: Any = "svc") -> Resource:
    return resource(MEMBER, "inv", {"name": name, "role": "roles/run.invoker", "member": member})


def test_bounded_gpu_service() -> None:
    check = cloudrun_bounded_gpu_service.check
    assert check([service()], CONFIG) == []
    (finding,) = check([service(maximum=None)], CONFIG)
    assert "no maximum instance count" in finding.message
    # A service-level maximum bounds it too.
    assert check([service(maximum=None, scaling={"maxInstanceCount": 4.0})], CONFIG) == []
    (finding,) = check([service(maximum=500.0)], CONFIG)
    assert "past the ceiling 64" in finding.message
    # A CPU service is not the rule's business.
    assert check([service(gpu=False, maximum=None)], CONFIG) == []
    pool = resource(
        POOL,
        "pool",
        {
            "template": {"nodeSelector": {"accelerator": "nvidia-l4"}},
            "scaling": {"manualInstanceCount": 100.0},
        },
    )
    (finding,) = check([pool], CONFIG)
    assert "100 manual instances" in finding.message


def test_private_gpu_service() -> None:
    check = cloudrun_private_gpu_service.check
    gateway = "serviceAccount:gw@p.iam.gserviceaccount.com"
    assert check([service(), invoker(gateway)], {}) == []
    (finding,) = check([service(), invoker("allUsers")], {})
    assert "allUsers may invoke GPU service svc" in finding.message
    (finding,) = check([service(), invoker("allAuthenticatedUsers", name=UNKNOWN)], {})
    assert "allAuthenticatedUsers" in finding.message
    binding = resource(
        BINDING, "b", {"name": "svc", "role": "roles/run.invoker", "members": ["allUsers", gateway]}
    )
    assert len(check([service(), binding], {})) == 1
    # Public CPU services, and other roles, are not the rule's business.
    assert check([service(gpu=False), invoker("allUsers")], {}) == []
    viewer = resource(
        MEMBER, "v", {"name": "svc", "role": "roles/run.viewer", "member": "allUsers"}
    )
    assert check([service(), viewer], {}) == []
    (finding,) = check([service(invokerIamDisabled=True)], {})
    assert "invokerIamDisabled" in finding.message


def test_concurrency_fills_batch() -> None:
    check = cloudrun_concurrency_fills_batch.check
    assert check([service()], {}) == []
    assert check([service(concurrency=32.0)], {}) == []
    (finding,) = check([service(concurrency=1.0)], {})
    assert "concurrency 1 per instance is below its batch of 32" in finding.message
    assert len(check([service(concurrency=16.0)], {})) == 1
    assert check([service(gpu=False, concurrency=1.0)], {}) == []
