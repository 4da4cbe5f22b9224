"""Helpers shared by the subcommands: policy, settings and connections from the common flags."""

from __future__ import annotations

import argparse
import os
from typing import Any

from governance.db import connect
from governance.objectstore import make_client
from governance.policy import Policy, load_policy
from governance.settings import POLICY_ENV, Settings, resolve


def policy_of(args: argparse.Namespace) -> Policy:
    return load_policy(args.policy or os.environ.get(POLICY_ENV) or None)


def settings_of(args: argparse.Namespace) -> Settings:
    return resolve(args.db_url, args.s3_endpoint_url)


def connection_of(args: argparse.Namespace) -> Any:
    settings = settings_of(args)
    return connect(settings.require_db_url(), source=settings.db_source)


def s3_of(args: argparse.Namespace) -> Any:
    return make_client(settings_of(args))
