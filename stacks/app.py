"""Build and synthesize the app: one ForecastStack per cloud environment."""

from __future__ import annotations

from pathlib import Path

from cdktn import App

from salesloop.config import load_settings
from stacks._jsii import REPO_ROOT
from stacks.forecast_stack import ForecastStack

CLOUD_ENVS = ("dev", "prod")


def build_app(
    app: App,
    *,
    envs: tuple[str, ...] = CLOUD_ENVS,
    repo_root: Path = REPO_ROOT,
    archive_dir: Path | None = None,
) -> dict[str, ForecastStack]:
    environments = repo_root / "environments"
    archive_dir = archive_dir or repo_root / "build" / "functions"
    return {
        env: ForecastStack(
            app,
            env,
            settings=load_settings(env, directory=environments),
            repo_root=repo_root,
            archive_dir=archive_dir,
        )
        for env in envs
    }


def synth(
    outdir: Path, *, envs: tuple[str, ...] = CLOUD_ENVS, repo_root: Path = REPO_ROOT
) -> dict[str, Path]:
    """Write ``<outdir>/stacks/<env>/cdk.tf.json`` per environment; return those paths."""
    app = App(outdir=str(outdir), skip_validation=False)
    build_app(app, envs=envs, repo_root=repo_root)
    app.synth()
    return {env: outdir / "stacks" / env / "cdk.tf.json" for env in envs}
