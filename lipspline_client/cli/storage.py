"""``lipspline storage``: the tenant's own S3 keys for datasets registered by ``s3://`` URI.

A group of its own because it holds a secret: the keys are sent once, sealed by the service and
never shown again (``show`` prints only which key is stored: the key id's last four characters).
"""

from __future__ import annotations

from typing import Any

import click

from lipspline_client.cli.options import client_of, json_option
from lipspline_client.cli.output import handles_errors, print_deleted, print_json, table
from lipspline_client.errors import LipSplineError
from lipspline_client.formatting import text, timestamp


@click.group()
def storage() -> None:
    """Your tenant's own keys for s3:// dataset URIs (else the service's are used)."""


def _print_credentials(found: Any, as_json: bool) -> None:
    """What ``set-s3`` and ``show`` print: which keys are stored, never the keys."""
    if as_json:
        return print_json(found)
    rows = [["access key id", found.s3.access_key_id_hint], ["region", text(found.s3.region)],
            ["session token", "given" if found.s3.has_session_token else "none"],
            ["updated", timestamp(found.updated_at)]]
    table("storage credentials", ["field", "value"], rows, wide=False)


@storage.command("set-s3")
@click.option("--access-key-id", required=True)
@click.option("--secret-access-key", prompt=True, hide_input=True, envvar="LIPSPLINE_S3_SECRET_ACCESS_KEY",
              help="[default: asked for, not echoed; or $LIPSPLINE_S3_SECRET_ACCESS_KEY]")
@click.option("--session-token", envvar="LIPSPLINE_S3_SESSION_TOKEN", help="for temporary (STS) keys")
@click.option("--region", help="[default: the service's]")
@json_option
@click.pass_context
@handles_errors
def storage_set_s3(ctx: click.Context, access_key_id: str, secret_access_key: str, session_token: str | None,
                   region: str | None, as_json: bool) -> None:
    """Store (or replace) your S3 keys: sealed by the service, never shown again."""
    stored = client_of(ctx).storage.set_s3_credentials(access_key_id, secret_access_key, session_token=session_token,
                                                      region=region)
    _print_credentials(stored, as_json)


@storage.command("show")
@json_option
@click.pass_context
@handles_errors
def storage_show(ctx: click.Context, as_json: bool) -> None:
    """Which S3 keys are stored (the key id's last four characters), never the keys.

    No keys stored is the tenant's normal state (its URIs are read with the service's credentials), so
    it is an answer, not an error: the service's 404 becomes a line of text (``--json``: ``"s3": null``)
    and exit status 0. Any other error still exits 1.
    """
    try:
        found = client_of(ctx).storage.credentials()
    except LipSplineError as error:
        if error.status != 404:
            raise
        if as_json:
            return print_json({"s3": None, "updated_at": None})
        click.echo("no S3 keys stored: s3:// URIs are read with the service's own credentials")
        return
    _print_credentials(found, as_json)


@storage.command("delete")
@json_option
@click.pass_context
@handles_errors
def storage_delete(ctx: click.Context, as_json: bool) -> None:
    """Forget your S3 keys: your URIs are read with the service's credentials again."""
    client_of(ctx).storage.delete_credentials()
    print_deleted(as_json, "deleted the tenant's storage credentials")
