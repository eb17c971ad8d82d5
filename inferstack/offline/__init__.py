"""The offline engine: run a stack's Pulumi program under the SDK's mocks, and report on it.

`capture` records every resource a program registers (what `inferstack preview` prints and what
`inferstack check` judges); it imports neither the components nor the policies, so the pack can
use it without importing the components.
"""
