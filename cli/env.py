"""``unimo env``: what unimo_kit finds on this machine."""

from __future__ import annotations

import json

import click


@click.command("env")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
def env(as_json: bool) -> None:
    """Report the offline resources (spaCy pipeline, WordNet, MiniLM, EfficientNet-Lite0,
    open_clip, faiss, torch): versions, paths and devices, and the engines (Ray's version
    when the `ray` extra is installed). Exits 1 when one is missing or
    cannot be imported (e.g. timm or open_clip over a broken torchvision).

    \b
    Example:
      unimo env
      unimo env --json | python -c "import json,sys; print(json.load(sys.stdin)['resources'])"
    """
    from unimo_kit.engine import ray_version
    from unimo_kit.resources import environment_report

    report = environment_report()
    # optional engines: reported, never MISSING (the `ray` extra; unimo_kit.engine)
    report["engines"] = {"local": True, "ray": ray_version()}
    missing = [name for name, entry in report["resources"].items() if not entry["found"]]
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"unimo_kit {report['unimo_kit']}  python {report['python']}")
        click.echo(f"cache: {report['cache']}")
        for name, entry in report["resources"].items():
            if entry["found"]:
                details = ", ".join(
                    f"{k}={v}" for k, v in entry.items() if k not in ("name", "found")
                )
                click.echo(f"  ok       {name:15s} {details}")
            else:
                click.echo(f"  MISSING  {name:15s} {entry['error']}")
        ray = report["engines"]["ray"]
        click.echo(f"engines: local, ray {ray}" if ray else "engines: local (ray: not installed)")
    if missing:
        raise SystemExit(1)
