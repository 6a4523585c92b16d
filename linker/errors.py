"""The one error tree of linker.

Every error a person can cause or fix is a ``LinkerError``: it carries a message for a person,
optionally the fix, and the process exit code the CLI maps it to. Programming errors are not
``LinkerError`` and stay loud (a traceback), because they are ours to fix.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0
    INTERNAL = 1  # a bug in linker: please report it
    USER = 2  # bad input: arguments, config file, spec (overlapping CIDRs, ...)
    CLOUD = 3  # the cloud said no: credentials, API errors, missing resources
    DEGRADED = 4  # the link exists but at least one tunnel is not healthy
    LOCKED = 5  # another run holds the link's lock
    INTERRUPTED = 130


class LinkerError(Exception):
    """Base of every error meant for a person. ``fix`` says what to do about it."""

    exit_code: ExitCode = ExitCode.INTERNAL
    kind: str = "error"

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n{self.fix}"

    def to_dict(self) -> dict[str, object]:
        return {"error": self.kind, "message": self.message, "fix": self.fix, "exit_code": int(self.exit_code)}


class UserError(LinkerError):
    """The input is wrong; running again with the same input fails the same way."""

    exit_code = ExitCode.USER
    kind = "user_error"


class ConfigError(UserError):
    """A configuration file is wrong. The message names the file, the line and the problem."""

    kind = "config_error"

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 fix: str | None = None) -> None:
        where = path or "<config>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}", fix)
        self.path = path
        self.line = line


class SpecError(UserError):
    """The link as asked for cannot be built (overlapping CIDRs, unknown region, ...)."""

    kind = "spec_error"


class KeyFileError(UserError):
    """A key file is missing, malformed or readable by others."""

    kind = "key_error"


class PrivilegeError(UserError):
    """The operation needs root (network namespaces, TUN devices)."""

    kind = "privilege_error"


class CloudError(LinkerError):
    """The cloud refused or failed a call."""

    exit_code = ExitCode.CLOUD
    kind = "cloud_error"


class CredentialsError(CloudError):
    kind = "credentials_error"


class SandboxError(CloudError):
    """The local sandbox cloud (``--sandbox``: network namespaces and an embedded AWS endpoint) failed."""

    kind = "sandbox_error"


class ManagedElsewhereError(UserError):
    """The link's resources are managed by another tool (Terraform)."""

    kind = "managed_elsewhere"


class DegradedError(LinkerError):
    """The link exists but not every tunnel is healthy."""

    exit_code = ExitCode.DEGRADED
    kind = "degraded"


class LockHeldError(LinkerError):
    """Another run holds the link's lock."""

    exit_code = ExitCode.LOCKED
    kind = "lock_held"


class ConflictError(UserError):
    """Something linker did not make is in the way (a route to a peer CIDR, ...); linker never overwrites it."""

    kind = "conflict"


class ContractError(CloudError):
    """A document the controller and the gateways exchange (membership, public key, health) is malformed.

    The message names the document and the field; the fix is usually to let its writer write it again."""

    kind = "contract_error"


class ContractVersionError(ContractError):
    """A document was written by a newer linker than this one reads: upgrade this side."""

    kind = "contract_version"
