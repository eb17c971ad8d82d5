"""pubsub-dead-letter-bindings: Pub/Sub can actually dead-letter what a subscription's policy says.

Why: Pub/Sub's own service agent (`service-<project number>@gcp-sa-pubsub.iam.gserviceaccount.com`)
moves a message that exhausted its delivery attempts: it publishes it to the dead-letter topic
and acknowledges it on the source subscription. Without `roles/pubsub.publisher` on the
dead-letter topic and `roles/pubsub.subscriber` on the subscription, the policy shows in the
console and nothing happens: the poison message is redelivered forever and the dead-letter topic
stays empty. This is the most common way dead-lettering on GCP silently fails.

Fix: add a `gcp.pubsub.TopicIAMMember` (publisher, on the dead-letter topic) and a
`gcp.pubsub.SubscriptionIAMMember` (subscriber, on the subscription) for the service agent, or
grant it both roles on the project.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.clouds import PUBSUB_SERVICE_AGENT_DOMAIN
from inferstack.policies.resources import UNKNOWN, Finding, Resource, list_of, mapping_of
from inferstack.policies.rule import Rule

PUBLISHER_ROLES: Final = frozenset(
    {"roles/pubsub.publisher", "roles/pubsub.editor", "roles/pubsub.admin"}
)
SUBSCRIBER_ROLES: Final = frozenset(
    {"roles/pubsub.subscriber", "roles/pubsub.editor", "roles/pubsub.admin"}
)
TOPIC_GRANTS: Final = frozenset(
    {
        resource_types.PUBSUB_TOPIC_IAM_MEMBER,
        resource_types.PUBSUB_TOPIC_IAM_BINDING,
        resource_types.PUBSUB_TOPIC_IAM_POLICY,
    }
)
SUBSCRIPTION_GRANTS: Final = frozenset(
    {
        resource_types.PUBSUB_SUBSCRIPTION_IAM_MEMBER,
        resource_types.PUBSUB_SUBSCRIPTION_IAM_BINDING,
        resource_types.PUBSUB_SUBSCRIPTION_IAM_POLICY,
    }
)


def _is_agent(member: Any) -> bool:
    """The service agent, or a member unknown in preview (judged after creation)."""
    if member is UNKNOWN:
        return True
    return isinstance(member, str) and member.endswith(f"@{PUBSUB_SERVICE_AGENT_DOMAIN}")


def _grants(resource: Resource) -> list[tuple[Any, Any]]:
    """(role, member) pairs a member, binding or policy resource grants; unknowns kept."""
    if resource.type.endswith("IAMMember"):
        return [(resource.get("role"), resource.get("member"))]
    if resource.type.endswith("IAMBinding"):
        members = resource.get("members")
        if members is UNKNOWN:
            return [(resource.get("role"), UNKNOWN)]
        return [(resource.get("role"), member) for member in list_of(members)]
    policy = resource.get("policyData")
    if not isinstance(policy, str):
        return [(UNKNOWN, UNKNOWN)]
    try:
        document = json.loads(policy)
    except ValueError:
        return []
    pairs = []
    for binding in list_of(mapping_of(document).get("bindings")):
        binding = mapping_of(binding)
        pairs += [(binding.get("role"), member) for member in list_of(binding.get("members"))]
    return pairs


def _grants_agent(resource: Resource, roles: frozenset[str]) -> bool:
    return any(
        (role is UNKNOWN or role in roles) and _is_agent(member)
        for role, member in _grants(resource)
    )


def _names(value: Any) -> set[str]:
    """A topic or subscription reference as the names it may be written by (id or short name)."""
    if not isinstance(value, str) or not value:
        return set()
    return {value, value.rsplit("/", 1)[-1]}


def _targets(grant: Resource, key: str, urns: set[str], names: set[str]) -> bool:
    """Whether `grant` sits on the resource known by `urns` (in the stack) or `names`."""
    if urns & set(grant.property_dependencies.get(key, ())):
        return True
    return bool(names & _names(grant.get(key)))


def _project_grants(resources: Sequence[Resource], roles: frozenset[str]) -> bool:
    return any(
        r.type == resource_types.PROJECT_IAM_MEMBER and _grants_agent(r, roles) for r in resources
    )


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for dead-letter policies the Pub/Sub service agent cannot carry out."""
    by_urn = {r.urn: r for r in resources}
    findings = []
    for subscription in resources:
        if subscription.type != resource_types.PUBSUB_SUBSCRIPTION:
            continue
        policy = subscription.get("deadLetterPolicy")
        if not isinstance(policy, Mapping) or not policy:
            continue  # no policy: async-spot-durability's finding
        topic_urns = set(subscription.property_dependencies.get("deadLetterPolicy", ()))
        topic_names = _names(policy.get("deadLetterTopic"))
        for urn in topic_urns:
            if urn in by_urn:
                topic_names |= _names(by_urn[urn].get("name"))
        subscription_names = _names(subscription.get("name"))
        missing = []
        publisher = _project_grants(resources, PUBLISHER_ROLES) or any(
            r.type in TOPIC_GRANTS
            and _targets(r, "topic", topic_urns, topic_names)
            and _grants_agent(r, PUBLISHER_ROLES)
            for r in resources
        )
        if not publisher:
            missing.append("roles/pubsub.publisher on the dead-letter topic (TopicIAMMember)")
        subscriber = _project_grants(resources, SUBSCRIBER_ROLES) or any(
            r.type in SUBSCRIPTION_GRANTS
            and _targets(r, "subscription", {subscription.urn}, subscription_names)
            and _grants_agent(r, SUBSCRIBER_ROLES)
            for r in resources
        )
        if not subscriber:
            missing.append("roles/pubsub.subscriber on this subscription (SubscriptionIAMMember)")
        if missing:
            findings.append(
                Finding(
                    "Pub/Sub subscription has a deadLetterPolicy but the Pub/Sub service agent "
                    f"(service-PROJECT_NUMBER@{PUBSUB_SERVICE_AGENT_DOMAIN}) lacks "
                    + " and ".join(missing)
                    + ", so failing messages are redelivered forever instead; grant them",
                    subscription.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="pubsub-dead-letter-bindings",
    description="A Pub/Sub dead-letter policy must come with the service agent's two bindings.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
)
