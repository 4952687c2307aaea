"""One Terraform stack per cloud environment, synthesized with CDK Terrain (cdktn).

``python -m stacks`` writes ``cdktf.out/stacks/<env>/cdk.tf.json`` for dev and prod; the same
:class:`~stacks.forecast_stack.ForecastStack` class builds both, and environments differ only
through environments/<env>.yaml. Not an installed package: run from the repository root.
"""

from stacks._jsii import jsii_environment

jsii_environment()  # before anything below imports cdktn
