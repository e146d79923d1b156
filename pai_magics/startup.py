"""Loads the PAI magics into an IPython kernel at start-up (``PYTHONSTARTUP=<this file>``).

IPython runs the file named by ``PYTHONSTARTUP`` in every kernel and shell it starts
(``InteractiveShellApp.exec_PYTHONSTARTUP``); a plain ``python`` REPL runs it too, where there is
no IPython and it does nothing. ``PAI_MAGICS_AUTOLOAD=0`` turns it off; a user's own start-up file
can be chained with ``PAI_USER_PYTHONSTARTUP``.
"""

import os as _os


def _pai_autoload() -> None:
    user_file = _os.environ.get("PAI_USER_PYTHONSTARTUP")
    if user_file and _os.path.isfile(user_file):
        with open(user_file) as f:
            exec(compile(f.read(), user_file, "exec"), globals())
    if _os.environ.get("PAI_MAGICS_AUTOLOAD", "1").lower() in ("0", "false", "no"):
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        try:
            shell.extension_manager.load_extension("pai_magics")
        except Exception as exc:  # a broken install must not break the kernel
            print(f"pai_magics: not loaded: {exc}")


_pai_autoload()
del _pai_autoload
