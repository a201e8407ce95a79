"""`dreamforge`: run the stack (`up`) or use a running one (generate, list, show, delete, reindex, export).

Exit codes: 0 success, 1 failure (an API error, or a job that failed or was
cancelled), 2 bad usage, 130 interrupted. Errors go to stderr; `--json` prints
machine-readable results on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.cli.api import ApiError, DreamForgeApi
from services.cli.export import to_html, to_markdown
from services.cli.progress import ProgressBar
from services.common.config import ConfigError

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def _default_url() -> str:
    port = os.environ.get("GATEWAY_PORT") or "8000"
    host = os.environ.get("GATEWAY_HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamforge", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=_default_url(), help="gateway URL (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("up", help="run the whole system in the foreground (what `make up` runs)")

    generate = commands.add_parser("generate", help="write a new story from a prompt")
    generate.add_argument("prompt")
    generate.add_argument("--parts", type=int, help="number of parts, 1-8")
    generate.add_argument("--style", help="illustration style, e.g. 'Watercolour'")
    generate.add_argument("--wait", action="store_true", help="follow progress and print the story at the end")
    generate.add_argument("--idempotency-key", help="submitting again with the same key returns the same job")

    listing = commands.add_parser("list", help="list stories, newest first")
    listing.add_argument("--limit", type=int, default=20, help="stories per page, 1-100")
    listing.add_argument("--query", "-q", help="only titles containing this text")
    listing.add_argument("--all", action="store_true", help="follow every page")

    show = commands.add_parser("show", help="print one story")
    show.add_argument("story_id")

    delete = commands.add_parser("delete", help="delete a story")
    delete.add_argument("story_id")

    commands.add_parser("reindex", help="rebuild the story index from the stored stories")

    export = commands.add_parser("export", help="write a story to one self-contained file")
    export.add_argument("story_id")
    export.add_argument("--format", choices=("md", "html"), default="html")
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up()
    try:
        with DreamForgeApi(args.url) as api:
            return _run(api, args)
    except ApiError as exc:
        print(f"dreamforge: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("\ndreamforge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _up() -> int:
    from services.cli.launcher import run_stack
    from services.cli.stack_settings import StackSettings
    from services.cli.summary import describe_configuration

    try:
        settings = StackSettings.from_env()
        summary = describe_configuration(settings)
    except ConfigError as exc:
        print(f"dreamforge: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_stack(settings, summary=summary))


def _run(api: DreamForgeApi, args: argparse.Namespace) -> int:
    if args.command == "generate":
        return _generate(api, args)
    if args.command == "list":
        return _list(api, args)
    if args.command == "show":
        story = api.story(args.story_id)
        _emit(args, story, _story_text(story))
        return 0
    if args.command == "delete":
        api.delete_story(args.story_id)
        _emit(args, {"deleted": args.story_id}, f"deleted {args.story_id}")
        return 0
    if args.command == "reindex":
        result = api.reindex()
        _emit(args, result, f"index rebuilt: {result.get('story_count', '?')} stories")
        return 0
    if args.command == "export":
        return _export(api, args)
    raise AssertionError(f"unhandled command {args.command}")


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _generate(api: DreamForgeApi, args: argparse.Namespace) -> int:
    job = api.submit(args.prompt, parts=args.parts, style=args.style, idempotency_key=args.idempotency_key)
    job_id = job["id"]
    if not args.wait:
        _emit(args, job, job_id)
        return 0
    bar = ProgressBar(sys.stderr)
    last_event_id: str | None = None
    try:
        while True:  # reconnect with Last-Event-ID if the stream drops before the end
            for event in api.events(job_id, last_event_id=last_event_id):
                last_event_id = event.id or last_event_id
                if event.event == "progress":
                    bar.update(int(event.data.get("progress", 0)), str(event.data.get("stage", "")),
                               str(event.data.get("message", "")))  # fmt: skip
                elif event.event == "done":
                    bar.update(100, "done")
                    bar.finish()
                    story = api.story(str(event.data["story_id"]))
                    _emit(args, story, _story_text(story))
                    return 0
                elif event.event == "failed":
                    bar.finish()
                    error = event.data.get("error") or {}
                    print(f"dreamforge: job {job_id} {_failure_word(event.data)}: {error.get('message', '')}",
                          file=sys.stderr)  # fmt: skip
                    return EXIT_FAILURE
            state = api.job(job_id).get("state")
            if state in ("failed", "cancelled"):
                bar.finish()
                print(f"dreamforge: job {job_id} {state}", file=sys.stderr)
                return EXIT_FAILURE
    except KeyboardInterrupt:
        bar.finish()
        return _offer_cancel(api, job_id)


def _failure_word(data: dict[str, Any]) -> str:
    return "was cancelled" if data.get("state") == "cancelled" else "failed"


def _offer_cancel(api: DreamForgeApi, job_id: str) -> int:
    if sys.stdin.isatty():
        try:
            answer = input(f"Cancel job {job_id}? [y/N] ")
        except (EOFError, KeyboardInterrupt):
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            api.cancel(job_id)
            print(f"cancelled {job_id}", file=sys.stderr)
            return EXIT_INTERRUPTED
    print(f"job {job_id} keeps running; check on it with GET /api/v1/jobs/{job_id}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _list(api: DreamForgeApi, args: argparse.Namespace) -> int:
    stories: list[Any] = []
    cursor = None
    while True:
        page = api.stories(limit=args.limit, cursor=cursor, query=args.query)
        stories.extend(page.get("stories", []))
        cursor = page.get("next_cursor")
        if not args.all or not cursor:
            break
    if args.json:
        print(json.dumps({"stories": stories, "next_cursor": cursor}, indent=2))
    else:
        for story in stories:
            print(f"{story['id']}  {str(story.get('created_at', ''))[:10]}  {story.get('title', '')}")
        if cursor:
            print(f"(more: --all, or the next page with cursor {cursor})", file=sys.stderr)
    return 0


def _story_text(story: dict[str, Any]) -> str:
    lines = [story.get("title", "Untitled"), "=" * len(story.get("title", "Untitled")), ""]
    for part in story.get("parts", []):
        if part.get("title"):
            lines += [part["title"], "-" * len(part["title"])]
        lines += [part.get("text", ""), ""]
    lines.append(f"(story {story.get('id', '')})")
    return "\n".join(lines)


def _export(api: DreamForgeApi, args: argparse.Namespace) -> int:
    story = api.story(args.story_id)
    render = to_markdown if args.format == "md" else to_html
    document = render(story, api.asset)
    if args.output:
        Path(args.output).write_text(document, encoding="utf-8")
        _emit(args, {"path": args.output, "format": args.format}, f"wrote {args.output}")
    else:
        sys.stdout.write(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
