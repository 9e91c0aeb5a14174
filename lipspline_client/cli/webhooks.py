"""``lipspline webhooks``: the tenant's signing secret and the endpoints told of every job's end.

A group of its own because webhooks are how a system outside the CLI learns a job ended (a signed
POST of its final event); ``deliveries`` shows what was sent and what each endpoint answered.
"""

from __future__ import annotations

import click

from lipspline_client.cli.options import client_of, json_option, wide_option
from lipspline_client.cli.output import err, handles_errors, lines, print_deleted, print_json, table
from lipspline_client.formatting import MISSING, text, timestamp


@click.group()
def webhooks() -> None:
    """The signing secret and the endpoints that receive every job's final event."""


@webhooks.command("secret")
@json_option
@click.pass_context
@handles_errors
def webhooks_secret(ctx: click.Context, as_json: bool) -> None:
    """Create or rotate the tenant's signing secret (printed once: store it)."""
    secret = client_of(ctx).webhooks.create_secret()
    print_json(secret) if as_json else click.echo(secret.secret)


@webhooks.command("add")
@click.argument("url")
@json_option
@click.pass_context
@handles_errors
def webhooks_add(ctx: click.Context, url: str, as_json: bool) -> None:
    """Register URL for the final event of every job; prints the endpoint's id."""
    endpoint = client_of(ctx).webhooks.register(url)
    if as_json:
        return print_json(endpoint)
    click.echo(endpoint.id)
    if endpoint.secret:
        lines(f"signing secret (created now, shown once): {endpoint.secret}", to=err)


@webhooks.command("list")
@wide_option
@json_option
@click.pass_context
@handles_errors
def webhooks_list(ctx: click.Context, wide: bool, as_json: bool) -> None:
    """The registered endpoints, newest first."""
    found = client_of(ctx).webhooks.list()
    if as_json:
        return print_json(found)
    rows = [[e.id, e.url, timestamp(e.created_at, short=True)] for e in found.items]
    table("webhooks", ["id", "url", "created"], rows, wide=wide)


@webhooks.command("delete")
@click.argument("endpoint_id")
@json_option
@click.pass_context
@handles_errors
def webhooks_delete(ctx: click.Context, endpoint_id: str, as_json: bool) -> None:
    """Stop sending to an endpoint (its deliveries keep their history)."""
    client_of(ctx).webhooks.delete(endpoint_id)
    print_deleted(as_json, f"deleted {endpoint_id}", id=endpoint_id)


@webhooks.command("deliveries")
@click.argument("job_id")
@wide_option
@json_option
@click.pass_context
@handles_errors
def webhooks_deliveries(ctx: click.Context, job_id: str, wide: bool, as_json: bool) -> None:
    """Every delivery of a job's final event: endpoint, state, attempts and the last answer."""
    found = client_of(ctx).webhooks.deliveries(job_id)
    if as_json:
        return print_json(found)
    rows = []
    for d in found.items:
        last = d.attempts[-1] if d.attempts else None
        answer = MISSING if last is None else (f"HTTP {last.status_code}" if last.status_code else text(last.error))
        rows.append([d.id, d.url, d.event, d.state, len(d.attempts), answer, timestamp(d.created_at, short=True)])
    table(f"deliveries of job {job_id}", ["id", "url", "event", "state", "attempts", "last answer", "created"], rows,
          wide=wide)
