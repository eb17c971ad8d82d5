"""parliament, the AWS IAM policy linter, run on our documents with its community auditors too."""

from __future__ import annotations

import json
import warnings
from typing import Any


def findings(document: dict[str, Any]) -> list[tuple[str, Any]]:
    """(issue, detail) of every parliament finding on `document`."""
    with warnings.catch_warnings():
        # parliament 1.6 imports pkg_resources, which warns on import.
        warnings.simplefilter("ignore", UserWarning)
        from parliament import analyze_policy_string

    policy = analyze_policy_string(json.dumps(document), include_community_auditors=True)
    return [(finding.issue, finding.detail) for finding in policy.findings]
