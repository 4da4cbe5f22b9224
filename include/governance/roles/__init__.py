"""Least privilege (SEC-4): the PostgreSQL group roles of each duty, generated from the policy.

``desired_grants`` (``plan``) derives what each role needs from the policy and the database's
catalog; ``apply_roles`` (``apply``) creates the NOLOGIN roles and makes their privileges exactly
that, granting what is missing and revoking what is no longer needed. ``governance roles apply``
runs it; login users are made members of a role by the operator (docs/runbook.md, 'Roles').
"""

from governance.roles.apply import RoleChanges, apply_roles, current_grants
from governance.roles.plan import Grant, desired_grants

__all__ = ["Grant", "RoleChanges", "apply_roles", "current_grants", "desired_grants"]
