"""The offline engine: everything `inferstack preview`, `check`, `simulate` and `schema` do.

- `discovery`: Pulumi.yaml, the stack files, and the flags the commands share to find them.
- `stack_config`: the one stack-config reader (`from_values`), also the stack program's.
- `capture`, `mock_monitor`, `placeholders`: run any Pulumi program under the SDK's mocks and
  record what it registers (they import no other inferstack part).
- `preview`, `check`, `schema`: the commands; `analyzer/`: the policy pack driven as the Pulumi
  engine drives it; `simulate/`: autoscaling, cold starts and spot on moving traffic.

Nothing in `components`, `runtime` or `policies` imports this package (tests/test_layout.py).
"""

__all__: list[str] = []
