"""Errors a user can act on, and the exit codes every command shares.

Every command (``asap_deploy.cli.entry``) prints ``error: <message>`` on one line and exits
with the ``exit_code`` of the exception's class:

====  ========================================================================================
code  meaning
====  ========================================================================================
0     success
1     verification failed: the command ran, but parity/accuracy is outside tolerance (the
      outputs are written for inspection; do not deploy them)
2     usage or input error: a bad flag, a missing, unreadable or damaged input file, an export
      folder that does not match its manifest, an output path that cannot be written
3     environment: a dependency is missing (TensorRT, nvcc, the plugin library), no CUDA GPU,
      an engine built for another TensorRT version or GPU, out of disk space or memory
4     a tool failed on accepted input (TensorRT could not build or crashed), or an unexpected
      internal error (a bug: rerun with ``--debug`` for the traceback and report it)
130   interrupted (Ctrl-C): nothing half-written is left behind
====  ========================================================================================
"""

EXIT_OK = 0
EXIT_VERIFICATION = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_TOOL = 4
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_VERIFICATION: "verification failed (parity outside tolerance)",
    EXIT_USAGE: "usage or input error",
    EXIT_ENVIRONMENT: "missing dependency or unsuitable environment",
    EXIT_TOOL: "a tool failed on accepted input, or an internal error",
    EXIT_INTERRUPTED: "interrupted",
}


class AsapDeployError(Exception):
    """Base class: the message says what is wrong and what to do about it."""

    exit_code = EXIT_USAGE


class UsageError(AsapDeployError):
    """A command line that cannot work (bad flag value, conflicting flags)."""


class InputPathError(AsapDeployError):
    """An input that is missing, unreadable, empty or of the wrong kind (file vs folder)."""


class OutputPathError(AsapDeployError):
    """An output location that cannot be written (parent is a file, no permission)."""


class CheckpointError(AsapDeployError):
    pass


class ConfigError(AsapDeployError):
    pass


class ResolutionError(ConfigError):
    pass


class ExportIntegrityError(AsapDeployError):
    """An export folder whose files do not match its manifest.json (damaged or foreign)."""


class VerificationError(AsapDeployError):
    """Outputs computed, but outside tolerance."""

    exit_code = EXIT_VERIFICATION


class EnvironmentProblem(AsapDeployError):
    """The input is fine but this machine cannot use it (no GPU, other TensorRT, other GPU)."""

    exit_code = EXIT_ENVIRONMENT


class MissingDependencyError(EnvironmentProblem):
    pass


class InputError(AsapDeployError):
    """An input a runner or application was given does not fit the model (one line: what was
    expected, what came, what to do)."""


class ToolFailure(AsapDeployError):
    """A library (TensorRT, a compiler) failed or crashed on input we accepted."""

    exit_code = EXIT_TOOL
