"""`model.profile` names a profile file: anything else is refused before a byte of it is repeated.

Issue 22 item 10: `model.profile: /etc/passwd` was opened and a JSON file's keys came back in the
schema errors. A stack's profile path must also stay inside its project.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inferstack.errors import SpecError
from inferstack.profile import MAX_PROFILE_BYTES, load_profile, resolve_profile
from tests.components.factories import PROFILE

SECRET = {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG", "token": "hunter2"}


def refusal(error: pytest.ExceptionInfo[SpecError]) -> str:
    [problem] = error.value.problems
    assert problem.path == "model.profile"
    return problem.message


def test_a_json_file_that_is_not_a_profile_is_refused_without_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(SECRET))
    with pytest.raises(SpecError) as error:
        load_profile(path)
    message = refusal(error)
    assert "is not an inferstack profile (not a JSON object with a format_version)" in message
    assert "inferstack profile --model URI --out FILE" in message
    for leaked in [*SECRET, *SECRET.values()]:
        assert leaked not in str(error.value)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"root:x:0:0:root:/root:/bin/bash\n", "not JSON"),
        (b"\xff\xfe secret", "not JSON"),
        (b'["root", "hunter2"]', "not a JSON object with a format_version"),
        (b'{"format_version": 2, ' + b" " * MAX_PROFILE_BYTES + b"}", "larger than"),
    ],
)
def test_files_that_are_not_profiles_are_refused_by_what_they_are(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "profile.json"
    path.write_bytes(content)
    with pytest.raises(SpecError) as error:
        load_profile(path)
    assert why in refusal(error)
    assert "root" not in str(error.value).replace(str(tmp_path), "")
    assert "hunter2" not in str(error.value)


def test_a_directory_or_a_missing_file_is_no_profile(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing.json"):
        with pytest.raises(SpecError) as error:
            load_profile(path)
        assert "no such regular file" in refusal(error)


def test_a_stack_profile_outside_the_project_is_refused_before_it_is_read(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "profiles").mkdir(parents=True)
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(PROFILE))  # a valid profile: refused for where it is
    (project / "profiles" / "link.json").symlink_to(outside)
    for given in ("/etc/passwd", str(outside), "../elsewhere.json", "profiles/link.json"):
        with pytest.raises(SpecError) as error:
            resolve_profile(PROFILE["model"], given, base_dir=project)
        message = refusal(error)
        assert "is outside the project directory" in message
        assert "give its path relative to it" in message
        assert "root" not in message.replace(str(tmp_path), "")


def test_a_stack_profile_inside_the_project_loads(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "model.json").write_text(json.dumps(PROFILE))
    loaded = resolve_profile(PROFILE["model"], "profiles/model.json", base_dir=tmp_path)
    assert loaded.model == PROFILE["model"]
    absolute = str(tmp_path / "profiles" / "model.json")
    assert resolve_profile(PROFILE["model"], absolute, base_dir=tmp_path) == loaded
    # Outside a stack (the CLI's --profile, a test) any path is the caller's own choice.
    shutil.copy(tmp_path / "profiles" / "model.json", tmp_path / "loose.json")
    assert resolve_profile(PROFILE["model"], str(tmp_path / "loose.json")) == loaded
