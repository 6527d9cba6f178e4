"""Mutation operators: each turns a correct code unit into buggy variants.

One protocol (`base.MutationOperator`), one module per family: `syntax`, `logic`,
`style`, `security`. Operators are registered by name in
`greenloop.data.mutation_operators`; each class's docstring carries a `fixed:`/`buggy:`
example that the conformance tests run.
"""
