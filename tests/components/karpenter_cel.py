"""The CEL rules of the Karpenter v1 CRDs (NodePool, EC2NodeClass), as Python.

`rule_check(rule)` returns the check for one `x-kubernetes-validations` rule, or None when it is
not translated (the schema builder then raises, so a new rule in a CRD cannot be skipped
silently). Three families of rules are translated by pattern (the restricted label domains,
whose lists are read out of the rule text itself); the rest one by one. Transition rules (those
that read `oldSelf`) are evaluated by the API server on updates only, never on create, which is
what these tests validate: they pass here, as they do when an object is first applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]


def _domain(key: str) -> str:
    """CEL's `key.find("^([^/]+)")`: everything before the first slash."""
    match = re.match(r"^([^/]+)", key)
    return match.group(1) if match else ""


def _allowed_in_domain(key: str, allowed: list[str], domain: str) -> bool:
    return key in allowed or not _domain(key).endswith(domain)


_SELF_DOMAIN = re.compile(
    r'^self in (\[[^\]]*\]) \|\| !self\.find\("\^\(\[\^/\]\+\)"\)\.endsWith\("([^"]+)"\)$'
)
_ALL_DOMAIN = re.compile(
    r'^self\.all\(x, x in (\[[^\]]*\]) \|\| !x\.find\("\^\(\[\^/\]\+\)"\)\.endsWith\("([^"]+)"\)\)$'
)
_ALL_NOT = re.compile(r'^self\.all\(x, x != "([^"]+)"\)$')
_SELF_NOT = re.compile(r'^self != "([^"]+)"$')


def _string_list(text: str) -> list[str]:
    return re.findall(r'"([^"]*)"', text)


def _alias_family(alias: str) -> str:
    match = re.match(r"^[^@]+", alias)
    return match.group(0) if match else ""


def _ami_family_rule(family: str, expected: str) -> Check:
    def check(spec: Any) -> bool:
        if "amiFamily" not in spec:
            return True
        terms = spec.get("amiSelectorTerms", [])
        if any("alias" in t and _alias_family(t["alias"]) == family for t in terms):
            return spec["amiFamily"] in {"Custom", expected}
        return True

    return check


def _has(obj: Any, key: str) -> bool:
    return isinstance(obj, dict) and key in obj


EXACT: dict[str, Check] = {
    # NodePool
    "!has(self.replicas) || (!has(self.limits) || size(self.limits) == 0 || (size(self.limits) "
    "== 1 && 'nodes' in self.limits))": lambda s: (
        "replicas" not in s
        or not s.get("limits")
        or (len(s["limits"]) == 1 and "nodes" in s["limits"])
    ),
    "!has(self.replicas) || !has(self.weight)": lambda s: "replicas" not in s or "weight" not in s,
    "self.all(x, has(x.schedule) == has(x.duration))": lambda budgets: all(
        ("schedule" in b) == ("duration" in b) for b in budgets
    ),
    "self != ''": lambda value: value != "",
    "self.all(x, x.operator == 'In' ? x.values.size() != 0 : true)": lambda reqs: all(
        len(r.get("values", [])) != 0 for r in reqs if r["operator"] == "In"
    ),
    "self.all(x, (x.operator == 'Gt' || x.operator == 'Lt' || x.operator == 'Gte' || x.operator "
    "== 'Lte') ? (x.values.size() == 1 && int(x.values[0]) >= 0) : true)": lambda reqs: all(
        len(r.get("values", [])) == 1 and int(r["values"][0]) >= 0
        for r in reqs
        if r["operator"] in {"Gt", "Lt", "Gte", "Lte"}
    ),
    "self.all(x, (x.operator == 'In' && has(x.minValues)) ? x.values.size() >= x.minValues : "
    "true)": lambda reqs: all(
        len(r.get("values", [])) >= r["minValues"]
        for r in reqs
        if r["operator"] == "In" and "minValues" in r
    ),
    # EC2NodeClass
    "(has(self.role) && !has(self.instanceProfile)) || (!has(self.role) && "
    "has(self.instanceProfile))": lambda s: ("role" in s) != ("instanceProfile" in s),
    "!has(self.amiFamily) || (self.amiSelectorTerms.exists(x, has(x.alias) && "
    "x.alias.find('^[^@]+') == 'al2') ? (self.amiFamily == 'Custom' || self.amiFamily == "
    "'AL2') : true)": _ami_family_rule("al2", "AL2"),
    "!has(self.amiFamily) || (self.amiSelectorTerms.exists(x, has(x.alias) && "
    "x.alias.find('^[^@]+') == 'al2023') ? (self.amiFamily == 'Custom' || self.amiFamily == "
    "'AL2023') : true)": _ami_family_rule("al2023", "AL2023"),
    "!has(self.amiFamily) || (self.amiSelectorTerms.exists(x, has(x.alias) && "
    "x.alias.find('^[^@]+') == 'bottlerocket') ? (self.amiFamily == 'Custom' || "
    "self.amiFamily == 'Bottlerocket') : true)": _ami_family_rule("bottlerocket", "Bottlerocket"),
    "!has(self.amiFamily) || (self.amiSelectorTerms.exists(x, has(x.alias) && "
    "x.alias.find('^[^@]+') == 'windows2019') ? (self.amiFamily == 'Custom' || "
    "self.amiFamily == 'Windows2019') : true)": _ami_family_rule("windows2019", "Windows2019"),
    "!has(self.amiFamily) || (self.amiSelectorTerms.exists(x, has(x.alias) && "
    "x.alias.find('^[^@]+') == 'windows2022') ? (self.amiFamily == 'Custom' || "
    "self.amiFamily == 'Windows2022') : true)": _ami_family_rule("windows2022", "Windows2022"),
    "!has(self.amiFamily) || (self.amiSelectorTerms.exists(x, has(x.alias) && "
    "x.alias.find('^[^@]+') == 'windows2025') ? (self.amiFamily == 'Custom' || "
    "self.amiFamily == 'Windows2025') : true)": _ami_family_rule("windows2025", "Windows2025"),
    "self.amiSelectorTerms.exists(x, has(x.alias)) ? true : has(self.amiFamily)": lambda s: (
        any("alias" in t for t in s.get("amiSelectorTerms", [])) or "amiFamily" in s
    ),
    "self.all(x, has(x.tags) || has(x.id) || has(x.name) || has(x.alias) || "
    "has(x.ssmParameter))": lambda terms: all(
        any(k in t for k in ("tags", "id", "name", "alias", "ssmParameter")) for t in terms
    ),
    "!self.exists(x, has(x.id) && (has(x.alias) || has(x.tags) || has(x.name) || "
    "has(x.owner)))": lambda terms: (
        not any(
            "id" in t and any(k in t for k in ("alias", "tags", "name", "owner")) for t in terms
        )
    ),
    "!self.exists(x, has(x.alias) && (has(x.id) || has(x.tags) || has(x.name) || "
    "has(x.owner)))": lambda terms: (
        not any(
            "alias" in t and any(k in t for k in ("id", "tags", "name", "owner")) for t in terms
        )
    ),
    "!(self.exists(x, has(x.alias)) && self.size() != 1)": lambda terms: (
        not (any("alias" in t for t in terms) and len(terms) != 1)
    ),
    "self.matches('^[a-zA-Z0-9]+@.+$')": lambda alias: bool(re.search(r"^[a-zA-Z0-9]+@.+$", alias)),
    "self.split('@')[0] in ['al2','al2023','bottlerocket','windows2019','windows2022',"
    "'windows2025']": lambda alias: (
        alias.split("@")[0]
        in {"al2", "al2023", "bottlerocket", "windows2019", "windows2022", "windows2025"}
    ),
    "self.split('@')[0] in ['windows2019','windows2022','windows2025'] ? self.split('@')[1] == "
    "'latest' : true": lambda alias: (
        alias.split("@")[0] not in {"windows2019", "windows2022", "windows2025"}
        or alias.split("@")[1] == "latest"
    ),
    "self.all(k, k != '' && self[k] != '')": lambda tags: all(
        k != "" and v != "" for k, v in tags.items()
    ),
    "self.filter(x, has(x.rootVolume)?x.rootVolume==true:false).size() <= 1": lambda devices: (
        sum(1 for d in devices if d.get("rootVolume") is True) <= 1
    ),
    "has(self.snapshotID) || has(self.volumeSize)": lambda ebs: (
        "snapshotID" in ebs or "volumeSize" in ebs
    ),
    "!has(self.volumeInitializationRate) || (has(self.snapshotID) && self.snapshotID != '')": (
        lambda ebs: "volumeInitializationRate" not in ebs or ebs.get("snapshotID", "") != ""
    ),
    "self.all(x, has(x.tags) || has(x.id) || has(x.instanceMatchCriteria))": lambda terms: all(
        any(k in t for k in ("tags", "id", "instanceMatchCriteria")) for t in terms
    ),
    "!self.all(x, has(x.id) && (has(x.tags) || has(x.ownerID) || "
    "has(x.instanceMatchCriteria)))": lambda terms: (
        not all(
            "id" in t and any(k in t for k in ("tags", "ownerID", "instanceMatchCriteria"))
            for t in terms
        )
    ),
    "has(self.tcpEstablishedTimeout) || has(self.udpStreamTimeout) || has(self.udpTimeout)": (
        lambda c: any(k in c for k in ("tcpEstablishedTimeout", "udpStreamTimeout", "udpTimeout"))
    ),
    "self.size() == 0 || self.exists(x, x.deviceIndex == 0 && x.networkCardIndex == 0 && "
    "x.interfaceType == 'interface')": lambda nics: (
        len(nics) == 0
        or any(
            n["deviceIndex"] == 0
            and n["networkCardIndex"] == 0
            and n["interfaceType"] == "interface"
            for n in nics
        )
    ),
    "self.all(x, self.filter(y, x.networkCardIndex == y.networkCardIndex && x.deviceIndex == "
    "y.deviceIndex).size() == 1 && (x.interfaceType != 'efa-only' || self.filter(y, "
    "x.networkCardIndex == y.networkCardIndex && y.interfaceType == 'efa-only').size() == 1))": (
        lambda nics: all(
            sum(
                1
                for y in nics
                if x["networkCardIndex"] == y["networkCardIndex"]
                and x["deviceIndex"] == y["deviceIndex"]
            )
            == 1
            and (
                x["interfaceType"] != "efa-only"
                or sum(
                    1
                    for y in nics
                    if x["networkCardIndex"] == y["networkCardIndex"]
                    and y["interfaceType"] == "efa-only"
                )
                == 1
            )
            for x in nics
        )
    ),
    "has(self.name) || has(self.id)": lambda s: "name" in s or "id" in s,
    "!(has(self.name) && has(self.id))": lambda s: not ("name" in s and "id" in s),
    "self.size() != 0": lambda items: len(items) != 0,
    "self.all(x, has(x.tags) || has(x.id) || has(x.name))": lambda terms: all(
        any(k in t for k in ("tags", "id", "name")) for t in terms
    ),
    "!self.all(x, has(x.id) && (has(x.tags) || has(x.name)))": lambda terms: (
        not all("id" in t and ("tags" in t or "name" in t) for t in terms)
    ),
    "!self.all(x, has(x.name) && (has(x.tags) || has(x.id)))": lambda terms: (
        not all("name" in t and ("tags" in t or "id" in t) for t in terms)
    ),
    "self.all(x, has(x.tags) || has(x.id))": lambda terms: all(
        "tags" in t or "id" in t for t in terms
    ),
    "!self.all(x, has(x.id) && has(x.tags))": lambda terms: (
        not all("id" in t and "tags" in t for t in terms)
    ),
    "self.all(k, k != '')": lambda tags: all(k != "" for k in tags),
    "self.all(k, k !='eks:eks-cluster-name')": lambda tags: "eks:eks-cluster-name" not in tags,
    "self.all(k, !k.startsWith('kubernetes.io/cluster') )": lambda tags: (
        not any(k.startswith("kubernetes.io/cluster") for k in tags)
    ),
    "self.all(k, k != 'karpenter.sh/nodepool')": lambda tags: "karpenter.sh/nodepool" not in tags,
    "self.all(k, k !='karpenter.sh/nodeclaim')": lambda tags: "karpenter.sh/nodeclaim" not in tags,
    "self.all(k, k !='karpenter.k8s.aws/ec2nodeclass')": lambda tags: (
        "karpenter.k8s.aws/ec2nodeclass" not in tags
    ),
}


def rule_check(rule: str) -> Check | None:
    """The Python check of one CEL rule, or None when it is not translated."""
    if "oldSelf" in rule:
        return lambda _value: True  # transition rule: not evaluated on create
    if rule in EXACT:
        return EXACT[rule]
    if match := _SELF_DOMAIN.match(rule):
        allowed, domain = _string_list(match.group(1)), match.group(2)
        return lambda key: _allowed_in_domain(key, allowed, domain)
    if match := _ALL_DOMAIN.match(rule):
        allowed, domain = _string_list(match.group(1)), match.group(2)
        return lambda keys: all(_allowed_in_domain(k, allowed, domain) for k in keys)
    if match := _ALL_NOT.match(rule):
        banned = match.group(1)
        return lambda keys: all(k != banned for k in keys)
    if match := _SELF_NOT.match(rule):
        banned = match.group(1)
        return lambda value: value != banned
    return None
