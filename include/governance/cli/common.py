"""Helpers shared by the subcommands: policy, settings and connections from the common flags."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias, cast

from governance.db import connect
from governance.objectstore import LazyClient, ObjectStoreUnavailable, make_client
from governance.policy import Policy, load_policy
from governance.settings import POLICY_ENV, Settings, resolve

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from psycopg2.extensions import connection

# What ``add_subparsers`` returns; each subcommand module's ``register`` adds its parsers to it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def policy_of(args: argparse.Namespace) -> Policy:
    return load_policy(args.policy or os.environ.get(POLICY_ENV) or None)


def settings_of(args: argparse.Namespace) -> Settings:
    return resolve(args.db_url, args.s3_endpoint_url)


def connection_of(args: argparse.Namespace) -> connection:
    settings = settings_of(args)
    return connect(settings.require_db_url(), source=settings.db_source)


def s3_of(args: argparse.Namespace) -> S3Client:
    return make_client(settings_of(args))


def lazy_s3_of(args: argparse.Namespace, unavailable: type[Exception] = ObjectStoreUnavailable) -> S3Client:
    """The S3 client, created at its first use (``governance.objectstore.LazyClient``)."""
    settings = settings_of(args)
    return cast("S3Client", LazyClient(lambda: make_client(settings), unavailable))


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number (``1_000`` allowed) of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum of {minimum}")
        return value

    return parse


positive_int = whole_number(1)
