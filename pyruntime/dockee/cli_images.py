"""Image verbs: import, load, save, images, rmi, tag, and `image ls|rm|prune|inspect|tag|import|load|save`.

Thin: parse docker's flags, call ImageStore / archives, print docker's output formats.
A progress bar (rich) is shown on import/load/save only when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

import click

from pyruntime.dockee.errors import DockeeError

if TYPE_CHECKING:  # images loads when a verb runs, not when dockee-shim registers its verbs
    from pyruntime.dockee.images import Image, ImageStore


def _images(ctx: click.Context) -> ImageStore:
    from pyruntime.dockee.images import ImageStore

    return ImageStore(ctx.obj.store)


@contextlib.contextmanager
def progress(label: str, total: int | None, quiet: bool = False) -> Iterator[Callable[[int], None] | None]:
    """A callback advancing a rich progress bar on stderr, or None when stderr is no terminal."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _size_of(path: str) -> int | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size if os.path.isfile(path) else None


def human_size(n: float) -> str:
    """docker's sizes: decimal units, four significant digits (go-units HumanSize)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.4g}{unit}"
        n /= 1000
    return f"{n}B"


def parse_time(s: str) -> datetime.datetime | None:
    if not s:
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", s)
    if not m:
        return None
    base = datetime.datetime.fromisoformat(m.group(1))
    frac = float(m.group(2) or 0)
    tz = m.group(3) or "Z"
    offset = datetime.UTC if tz == "Z" else datetime.timezone(
        datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])) * (1 if tz[0] == "+" else -1))
    return base.replace(tzinfo=offset) + datetime.timedelta(seconds=frac)


def human_ago(created: str, now: datetime.datetime | None = None) -> str:
    """docker's 'CREATED' column (go-units HumanDuration + ' ago')."""
    t = parse_time(created)
    if t is None:
        return "N/A"
    now = now or datetime.datetime.now(datetime.UTC)
    s = (now - t).total_seconds()
    if s < 1:
        d = "Less than a second"
    elif s < 2:
        d = "1 second"
    elif s < 60:
        d = f"{int(s)} seconds"
    elif s / 60 < 2:
        d = "About a minute"
    elif s / 60 < 60:
        d = f"{int(s / 60)} minutes"
    elif s / 3600 < 1.5:
        d = "About an hour"
    elif s / 3600 < 48:
        d = f"{round(s / 3600)} hours"
    elif s / 3600 < 24 * 7 * 2:
        d = f"{int(s / 86400)} days"
    elif s / 3600 < 24 * 30 * 2:
        d = f"{int(s / 86400 / 7)} weeks"
    elif s / 3600 < 24 * 365 * 2:
        d = f"{int(s / 86400 / 30)} months"
    else:
        d = f"{int(s / 86400 / 365)} years"
    return f"{d} ago"


def _rows(imgs: list[Image]) -> list[dict[str, Any]]:
    rows = []
    for img in sorted(imgs, key=lambda i: i.created, reverse=True):
        for tag in img.tags or ["<none>:<none>"]:
            repo, _, t = tag.rpartition(":")
            rows.append({"Repository": repo, "Tag": t, "ID": img.short_id, "CreatedAt": img.created,
                         "CreatedSince": human_ago(img.created), "Size": human_size(img.size),
                         "VirtualSize": human_size(img.size), "Digest": "<none>", "Containers": "N/A"})
    return rows


def _template(fmt: str, row: dict[str, Any]) -> str:
    text = fmt.replace("\\t", "\t").replace("\\n", "\n")
    if text.startswith("table "):
        text = text[6:]

    def field(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in row:
            raise DockeeError(f"--format: no field {key!r} (fields: {', '.join(row)})")
        return str(row[key])

    return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", field, text)


def image_filter(filters: tuple[str, ...]) -> Callable[[Image], bool]:
    """docker images -f: dangling=true|false, reference=PATTERN (shell-style, with or without tag)."""
    import fnmatch

    checks: list[Callable[[Image], bool]] = []
    for f in filters:
        key, sep, value = f.partition("=")
        if key == "dangling" and value in ("true", "false"):
            def dangling(i: Image, want: bool = value == "true") -> bool:
                return (not i.tags) == want
            checks.append(dangling)
        elif key == "reference" and sep and value:
            def reference(i: Image, pat: str = value if ":" in value.rsplit("/", 1)[-1] else value + ":*") -> bool:
                return any(fnmatch.fnmatchcase(t, pat) or fnmatch.fnmatchcase(t.removeprefix("localhost/"), pat)
                           for t in i.tags)
            checks.append(reference)
        else:
            raise DockeeError(f"invalid filter {f!r}: use dangling=true|false or reference=PATTERN")
    return lambda i: all(c(i) for c in checks)


def list_images(ctx: click.Context, quiet: bool, fmt: str | None, no_trunc: bool,
                filters: tuple[str, ...] = ()) -> None:
    keep = image_filter(filters)
    imgs = [i for i in _images(ctx).all() if keep(i)]
    if quiet:
        seen = []
        for img in sorted(imgs, key=lambda i: i.created, reverse=True):
            if img.id not in seen:
                seen.append(img.id)
                click.echo(f"sha256:{img.id}" if no_trunc else img.short_id)
        return
    rows = _rows(imgs)
    if no_trunc:
        by_short = {i.short_id: i.id for i in imgs}
        for r in rows:
            r["ID"] = "sha256:" + by_short[r["ID"]]
    if fmt in ("json", "{{json .}}"):
        for r in rows:
            click.echo(json.dumps(r))
        return
    if fmt and fmt.startswith("table") and fmt.strip() != "table":
        from pyruntime.dockee.cli_containers import format_table

        headers = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedAt": "CREATED AT",
                   "CreatedSince": "CREATED", "Size": "SIZE", "VirtualSize": "SIZE", "Digest": "DIGEST"}
        for text in format_table(fmt, rows, headers, _template):
            click.echo(text)
        return
    if fmt and fmt != "table":
        for r in rows:
            click.echo(_template(fmt, r))
        return
    cols = [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"), ("CREATED", "CreatedSince"),
            ("SIZE", "Size")]
    widths = [max([len(h)] + [len(str(r[k])) for r in rows]) for h, k in cols]
    lines = [[h for h, _ in cols]] + [[str(r[k]) for _, k in cols] for r in rows]
    for line in lines:
        click.echo("   ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def do_import(ctx: click.Context, file: str, ref: str | None, changes: tuple[str, ...], message: str) -> None:
    imgs = _images(ctx)
    with _open_input(file) as (src, what, total), progress(f"import {what}", total) as tick:
        img = imgs.import_tar(src, ref, changes=list(changes), message=message, what=what, on_bytes=tick)
    click.echo(f"sha256:{img.id}")


@contextlib.contextmanager
def _open_input(file: str) -> Iterator[tuple[IO[bytes], str, int | None]]:
    if file == "-":
        yield sys.stdin.buffer, "-", None
        return
    try:
        f = open(file, "rb")
    except OSError as e:
        raise DockeeError(f"{file}: {e.strerror}") from None
    with f:
        yield f, file, _size_of(file)


def do_load(ctx: click.Context, file: str | None, quiet: bool) -> None:
    from pyruntime.dockee import archives

    imgs = _images(ctx)
    src = file or "-"
    if src == "-" and sys.stdin.isatty():
        raise DockeeError("load: no archive: use -i FILE or pipe one to stdin")
    total = _size_of(src) if src != "-" else None
    with progress(f"load {src}", total, quiet) as tick:
        loaded = archives.load(imgs, src, on_bytes=tick)
    for img, tags in loaded:
        if tags:
            for t in tags:
                click.echo(f"Loaded image: {t}")
        else:
            click.echo(f"Loaded image ID: sha256:{img.id}")


def do_save(ctx: click.Context, output: str | None, refs: tuple[str, ...]) -> None:
    from pyruntime.dockee import archives

    if not refs:
        raise DockeeError("save: name at least one image")
    if output is None and sys.stdout.isatty():
        raise DockeeError("save: refusing to write an archive to a terminal: use -o FILE or redirect stdout")
    imgs = _images(ctx)
    picked = [(imgs.resolve(r), r) for r in refs]
    with progress("save", None) as tick:
        archives.save(imgs, picked, output, on_bytes=tick)


def do_rmi(ctx: click.Context, refs: tuple[str, ...], force: bool) -> None:
    imgs = _images(ctx)
    failed = None
    for ref in refs:
        try:
            for line in imgs.remove(ref, force=force):
                click.echo(line)
        except DockeeError as e:
            # docker goes on with the other images and fails at the end
            print(f"dockee-shim: {e}", file=sys.stderr)
            failed = e
    if failed is not None:
        sys.exit(1)  # docker's status when any image could not be removed


def do_tag(ctx: click.Context, source: str, target: str) -> None:
    imgs = _images(ctx)
    imgs.tag(imgs.resolve(source), target)


def do_inspect(ctx: click.Context, refs: tuple[str, ...], fmt: str | None) -> None:
    imgs = _images(ctx)
    docs = []
    missing = None
    for ref in refs:
        try:
            docs.append(imgs.inspect(imgs.resolve(ref)))
        except DockeeError as e:
            missing = e
            print(f"dockee-shim: {e}", file=sys.stderr)
    if fmt:
        for d in docs:
            click.echo(_inspect_template(fmt, d))
    else:
        click.echo(json.dumps(docs, indent=4))
    if missing is not None:
        sys.exit(1)


def _inspect_template(fmt: str, doc: dict[str, Any]) -> str:
    def field(m: re.Match[str]) -> str:
        value: Any = doc
        for part in m.group(2).split("."):
            if not part:
                continue
            if not isinstance(value, dict) or part not in value:
                raise DockeeError(f"--format: no field {m.group(2)!r}")
            value = value[part]
        return json.dumps(value) if m.group(1) or isinstance(value, (dict, list)) else str(value)

    return re.sub(r"\{\{\s*(json\s+)?\.([\w.]*)\s*\}\}", field, fmt)


def do_prune(ctx: click.Context, all_unused: bool, force: bool) -> None:
    if not force and sys.stdin.isatty():
        what = "all images without at least one container associated to them" if all_unused \
            else "all dangling images"
        if not click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?"):
            return
    lines = _images(ctx).prune(all_unused=all_unused)
    if lines:
        click.echo("Deleted Images:")
        for line in lines:
            word, _, rest = line.partition(" ")
            click.echo(f"{word.lower()} {rest}")


# -- registration -----------------------------------------------------------------------------

_CHANGE_HELP = "a Dockerfile instruction: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME"


def _verbs() -> dict[str, click.Command]:
    @click.command("import", help="Import a rootfs tarball (docker export) as an image.")
    @click.option("-c", "--change", "changes", multiple=True, help=_CHANGE_HELP)
    @click.option("-m", "--message", default="", help="a commit message for the image")
    @click.argument("file")
    @click.argument("ref", required=False)
    @click.pass_context
    def import_(ctx: click.Context, changes: tuple[str, ...], message: str, file: str, ref: str | None) -> None:
        do_import(ctx, file, ref, changes, message)

    @click.command("load", help="Load images from a docker-save archive or an OCI layout/archive.")
    @click.option("-i", "--input", "file", help="the archive (default stdin); an OCI layout directory too")
    @click.option("-q", "--quiet", is_flag=True)
    @click.pass_context
    def load(ctx: click.Context, file: str | None, quiet: bool) -> None:
        do_load(ctx, file, quiet)

    @click.command("save", help="Save images as a docker-save archive.")
    @click.option("-o", "--output", help="the archive (default stdout)")
    @click.argument("refs", nargs=-1)
    @click.pass_context
    def save(ctx: click.Context, output: str | None, refs: tuple[str, ...]) -> None:
        do_save(ctx, output, refs)

    @click.command("images", help="List images.")
    @click.option("-q", "--quiet", is_flag=True, help="only the ids")
    @click.option("-a", "--all", "all_", is_flag=True, help="(accepted; there are no intermediate images)")
    @click.option("--format", "fmt", help="json or a Go template of fields like {{.Repository}}")
    @click.option("--no-trunc", is_flag=True)
    @click.option("-f", "--filter", "filters", multiple=True, help="dangling=true|false, reference=busybox*")
    @click.argument("repository", required=False)
    @click.pass_context
    def images(ctx: click.Context, quiet: bool, all_: bool, fmt: str | None, no_trunc: bool,
               filters: tuple[str, ...], repository: str | None) -> None:
        list_images(ctx, quiet, fmt, no_trunc, filters + ((f"reference={repository}",) if repository else ()))

    def no_registry(verb: str) -> click.Command:
        @click.command(verb, hidden=True, context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def cmd(args: tuple[str, ...]) -> None:
            raise DockeeError(f"{verb}: dockee-shim has no registry or builder; images come from `load`, "
                              "`import`, `commit`, or the embedded `busybox`")
        return cmd

    @click.command("rmi", help="Remove images.")
    @click.option("-f", "--force", is_flag=True, help="untag and remove even when in use or multiply tagged")
    @click.argument("refs", nargs=-1, required=True)
    @click.pass_context
    def rmi(ctx: click.Context, force: bool, refs: tuple[str, ...]) -> None:
        do_rmi(ctx, refs, force)

    @click.command("tag", help="Give an image another name.")
    @click.argument("source")
    @click.argument("target")
    @click.pass_context
    def tag(ctx: click.Context, source: str, target: str) -> None:
        do_tag(ctx, source, target)

    @click.command("inspect", help="Show images as JSON.")
    @click.option("-f", "--format", "fmt", help="a Go template such as {{.Id}} or {{json .Config}}")
    @click.argument("refs", nargs=-1, required=True)
    @click.pass_context
    def inspect(ctx: click.Context, fmt: str | None, refs: tuple[str, ...]) -> None:
        do_inspect(ctx, refs, fmt)

    @click.command("prune", help="Remove dangling images (-a: all unused ones).")
    @click.option("-a", "--all", "all_", is_flag=True)
    @click.option("-f", "--force", is_flag=True, help="do not ask")
    @click.pass_context
    def prune(ctx: click.Context, all_: bool, force: bool) -> None:
        do_prune(ctx, all_, force)

    return {"import": import_, "load": load, "save": save, "images": images, "rmi": rmi, "tag": tag,
            "inspect": inspect, "prune": prune, "pull": no_registry("pull"), "build": no_registry("build"),
            "push": no_registry("push")}


def register(group: click.Group) -> None:
    """Add this module's verbs to `group`: top-level ones and the `image` group."""
    verbs = _verbs()
    for name in ("import", "load", "save", "images", "rmi", "tag", "pull", "build", "push"):
        group.add_command(verbs[name], name)

    @group.group("image", help="Manage images.")
    def image() -> None:
        pass

    fresh = _verbs()  # separate objects: one command instance per place it is registered
    for name, cmd in (("ls", fresh["images"]), ("list", fresh["images"]), ("rm", fresh["rmi"]),
                      ("prune", fresh["prune"]), ("inspect", fresh["inspect"]), ("tag", fresh["tag"]),
                      ("import", fresh["import"]), ("load", fresh["load"]), ("save", fresh["save"])):
        image.add_command(cmd, name)
