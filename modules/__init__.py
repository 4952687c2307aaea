"""CDK Terrain constructs, one per logical entity of the salesloop deployment.

Each construct takes a :class:`modules.context.StackContext` (the validated settings of one
environment plus naming and label helpers) so environments differ only through environments/.
Not an installed package: run from the repository root (``python -m stacks``).
"""
