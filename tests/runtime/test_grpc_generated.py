"""The checked-in gRPC code is protoc's output of the checked-in official protos, unedited, and
it speaks the same wire names as Triton's own client."""

from __future__ import annotations

from pathlib import Path

import tritonclient.grpc.service_pb2 as triton_service

from inferstack.runtime.grpc import HEALTH_SERVICE, SERVICE
from inferstack.runtime.grpc.generate import GENERATED, PROTO_ROOT, PROTOS, generate
from inferstack.runtime.grpc.generated import health_pb2
from inferstack.runtime.grpc.generated import open_inference_grpc_pb2 as pb


def test_the_generated_modules_equal_a_fresh_protoc_run(tmp_path: Path):
    written = generate(tmp_path)
    assert {path.name for path in written} == {
        path.name for path in GENERATED.iterdir() if "_pb2" in path.name
    }
    for path in written:
        assert path.read_text() == (GENERATED / path.name).read_text(), (
            f"{path.name} differs: run `python -m inferstack.runtime.grpc.generate`"
        )


TRITON_PROTOS = {"grpc_service.proto", "model_config.proto"}
"""Triton's own protos (BSD-3-Clause); the others are Apache-2.0."""


def test_each_proto_keeps_its_license_header_and_its_source_is_recorded():
    sources = (PROTO_ROOT / "README.md").read_text()
    assert set(PROTOS) >= TRITON_PROTOS
    for proto in PROTOS:
        text = (PROTO_ROOT / proto).read_text()
        assert text.startswith("// Copyright ")
        if proto in TRITON_PROTOS:
            assert "Redistribution and use in source and binary forms" in text
        else:
            assert "Licensed under the Apache License, Version 2.0" in text
        assert f"`{proto}`" in sources


def test_service_names_are_the_protos():
    assert pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name == SERVICE
    assert health_pb2.DESCRIPTOR.services_by_name["Health"].full_name == HEALTH_SERVICE


def test_every_method_and_message_matches_tritons_own_definition_on_the_wire():
    """tritonclient.grpc sends Triton's grpc_service.proto messages to the same method paths: the
    KServe proto's methods and fields must be a compatible subset (names, numbers, types)."""
    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    extra: list[str] = []
    theirs = triton_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name
    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        for mine, triton in (
            (method.input_type, other.input_type),
            (method.output_type, other.output_type),
        ):
            assert mine.full_name == triton.full_name
            _same_fields(mine, triton, extra)
    # KServe's one addition; Triton's client skips a field it does not know (proto3).
    assert extra == ["inference.ModelMetadataResponse.properties"]


def _same_fields(mine, triton, extra: list[str]) -> None:
    for field in mine.fields:
        other = triton.fields_by_number.get(field.number)
        if other is None:
            extra.append(field.full_name)
            continue
        assert (field.name, field.type, field.label) == (other.name, other.type, other.label), (
            f"{mine.full_name}.{field.name}"
        )
        if field.message_type is not None:
            _same_fields(field.message_type, other.message_type, extra)


def test_tritons_proto_here_matches_the_one_tritonclient_speaks_for_the_rpcs_served_from_it():
    """ModelStreamInfer and ModelConfig are read from Triton's proto: the copy here and the one
    compiled into tritonclient must agree on those methods and every field they carry."""
    from inferstack.runtime.grpc.generated import grpc_service_pb2 as triton_here

    ours = triton_here.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == SERVICE
    extra: list[str] = []
    for name in ("ModelStreamInfer", "ModelConfig"):
        method, other = ours.methods_by_name[name], theirs.methods_by_name[name]
        assert (method.client_streaming, method.server_streaming) == (
            other.client_streaming,
            other.server_streaming,
        )
        for mine, triton in (
            (method.input_type, other.input_type),
            (method.output_type, other.output_type),
        ):
            assert mine.full_name == triton.full_name
            _same_fields(mine, triton, extra)
    # Fields newer than tritonclient 2.66's copy: proto3 clients skip what they do not know.
    assert all(field.startswith("inference.ModelConfig") for field in extra), extra


def test_the_kserve_and_triton_messages_live_in_separate_pools_from_tritonclients():
    """Three definitions of `inference.ModelInferRequest` in one process (KServe's, Triton's
    copy here, tritonclient's) must not collide: each family has a pool of its own."""
    from inferstack.runtime.grpc.generated import grpc_service_pb2 as triton_here
    from inferstack.runtime.grpc.generated import model_config_pb2

    pools = {pb.DESCRIPTOR.pool, triton_here.DESCRIPTOR.pool, triton_service.DESCRIPTOR.pool}
    assert len(pools) == 3
    assert model_config_pb2.DESCRIPTOR.pool is triton_here.DESCRIPTOR.pool
