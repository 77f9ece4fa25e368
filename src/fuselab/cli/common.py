"""What the console scripts share: the one-line error for a user's mistake, the final table."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from fuselab.errors import user_error
from fuselab.runs.context import hydra_context

log = logging.getLogger("fuselab")
console = Console()
errors = Console(stderr=True)

# pytorch_lightning's own pytree helper trips a torch deprecation at every run; it is neither the
# user's to fix nor fuselab's, and it buried one-line error messages
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


def print_error(prog: str, message: object) -> None:
    """``prog: error: message`` on stderr; square brackets in the message are printed as written."""
    errors.print(f"{prog}: error: {message}", markup=False, highlight=False, soft_wrap=True, style="bold red")


def check_command_line(prog: str, argv: list[str] | None = None) -> None:
    """What must be refused before Hydra writes anything: a name that would become a folder outside
    the output directory (``experiment_name=../x``), a group option or a setting that does not
    exist (``fusion=mid``, ``rnn.hiden_size=3``). Exits 2 with one line."""
    from fuselab.config.keys import check_override_keys
    from fuselab.config.names import check_override_names
    from fuselab.errors import ConfigError

    args = sys.argv[1:] if argv is None else argv
    try:
        check_override_names(args)
        check_group_choices(args)
        check_override_keys(args, "eval" if prog == "fuselab-eval" else "train")
    except ConfigError as exc:
        print_error(prog, exc)
        sys.exit(2)


def check_group_choices(args: list[str]) -> None:
    """``group=option`` names an option the group has (``fusion=mid`` is refused naming the
    options, instead of Hydra's traceback). Hydra's own groups and options from another config
    folder (``hydra.searchpath``) are left to Hydra."""
    from importlib.resources import files

    from fuselab.errors import ConfigError

    if any(a.startswith(("hydra.searchpath", "--config-dir", "-cd", "--config-path", "-cp")) for a in args):
        return
    root = files("fuselab.conf")
    for arg in args:
        key, eq, value = arg.lstrip("+").partition("=")
        if not eq or arg.startswith("~") or "." in key or key.startswith("hydra") or "(" in value:
            continue
        group = root.joinpath(*key.split("/"))
        if not group.is_dir():
            continue
        files = {p.name[:-5] for p in group.iterdir() if p.name.endswith(".yaml")}
        for option in value.split(","):
            if option and option != "null" and option not in files:
                options = sorted(f for f in files if not f.startswith("_"))
                raise ConfigError(f"{key}={option}: {key} has no option {option!r}; choose one of {options}")


def run_guarded(fn: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig, prog: str) -> dict[str, Any] | None:
    """Run ``fn``. A user's mistake (:class:`~fuselab.errors.ConfigError`) exits with a one-line
    message on stderr (code 2); any other exception is a bug and keeps its traceback. In a
    multirun a failed job is recorded (its summary.json says failed) and the sweep goes on."""
    multirun = hydra_context()["multirun"]
    try:
        return fn(cfg)
    except Exception as exc:
        err = user_error(exc)
        if err is not None:
            print_error(prog, err)
            if multirun:
                return None
            sys.exit(2)
        if multirun:
            log.exception("job failed; the sweep goes on (see its summary.json)")
            return None
        raise


def report_metrics(summary: dict[str, Any]) -> None:
    if summary.get("skipped"):
        console.print(f"skipped: completed earlier in {summary.get('run_dir')}", markup=False, soft_wrap=True)
        return
    table = Table(title=f"fuselab: {summary.get('status')} in {summary.get('wall_time_s', 0):.1f}s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in sorted((summary.get("metrics") or {}).items()):
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    if summary.get("converged") is False:
        patience = summary.get("patience")
        where = f"within the early-stopping patience ({patience}) of the final epoch" if patience else "the final epoch"
        console.print(
            f"not converged: {summary.get('monitor') or 'the monitored metric'} last improved at epoch "
            f"{summary.get('best_epoch')}, {where}; the budget decided these numbers "
            "(raise trainer.max_epochs to train on)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"outputs:  {summary.get('run_dir')}", markup=False, highlight=False, soft_wrap=True)
    logs = _hydra_dir()
    if logs and summary.get("run_dir") and Path(logs).resolve() != Path(str(summary["run_dir"])).resolve():
        # paths.output_dir moved the outputs; Hydra still writes train.log and .hydra/ in its own dir
        console.print(f"log and config:  {logs}", markup=False, highlight=False, soft_wrap=True)
    best = summary.get("best_checkpoint")
    if best and Path(best).exists():
        console.print(f"best checkpoint: {best}", markup=False, highlight=False, soft_wrap=True)
    run_dir = Path(str(summary.get("run_dir", ".")))
    if any(run_dir.glob("wandb/offline-run-*")):
        console.print(f"upload to wandb:  wandb sync {run_dir}/wandb/offline-run-*", markup=False, soft_wrap=True)


def _hydra_dir() -> str | None:
    """Where Hydra writes this run's train.log and .hydra/ (None outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None
