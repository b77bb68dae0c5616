"""Runs inside the student's kernel, as its launcher: each graded test cell runs on IPython's own machinery.

`python -P -m collabkit.grading.kernel_guard DIGESTS -f CONNECTION_FILE` starts ipykernel the way
`ipykernel_launcher` does, with two differences:

- It gives IPython a fresh, empty profile folder (`IPYTHONDIR`), so nothing a kernel of the same
  student wrote earlier (startup files, `ipython_kernel_config.py`) runs before the capture below.
- Before the kernel handles its first message, while no student code has run, it captures the
  machinery that decides how a cell runs and how its result is reported (`Machinery`): the
  shell's and the kernel's methods (run_cell, run_cell_async, run_ast_nodes, run_code,
  should_run_async, transform_cell, showtraceback, do_execute, execute_request, dispatch_shell,
  session.send ...), the classes that define them and the modules they call into, the input and
  AST transformers, custom exception handlers and traceback formatters, the compiler, the event
  callbacks, the display hooks, sys.stdout/stderr and their write methods, sys's hooks, the
  builtins and the namespace's `__builtins__`, and the kit's helpers the tests call (the globals
  of collabkit.nb and collabkit.scaffold, and the name `ck`, which the notebooks bind to the first).

Then, for each execute_request whose code is a graded test cell (its sha256 is in DIGESTS, which
the worker computes from the sanitized notebook, so a student cannot make a test look ungraded),
the captured machinery is put back before the request is handled and the student's own is put
back after the reply was sent. A test therefore runs, fails and reports its failure as if no
student cell had run; the student's cells keep whatever they set up (their plots still show).

Why at this level: the worker could send a "restore" cell before each test, but that cell would be
run by the very run_cell, do_execute or dispatch_shell that the student may have replaced. Here the
bracket sits in the callback the kernel's shell socket calls for every message (`kernel.shell_main`,
bound when the kernel starts, before any student code), so it runs before anything the student can
replace by assigning an attribute of the shell, the kernel or their classes.

What this does not stop (README, "What a determined student can still do"): code in the same
process can still find this closure (through the socket's callback, `gc`, or the frames below a
cell) and change it; rebind the socket's callback; start a thread that patches things again while
the test runs; patch C-level state through ctypes; or patch libraries the tests call (torch,
pandas, the kit's own helpers). Only judging outside the kernel closes those.
"""

from __future__ import annotations

import builtins
import gc
import hashlib
import json
import os
import sys
import tempfile
import types

ABSENT = object()  # "this entry did not exist"
HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python (C types cannot be changed anyway)
SET_CLASS_ATTR, DEL_CLASS_ATTR = type.__setattr__, type.__delattr__  # the metaclass's own could be replaced

# Instance attributes (in __dict__ or traitlets' _trait_values) that hold machinery, beyond the methods
# every object below gets back anyway.
SHELL_ATTRS = (
    "ast_transformers",
    "input_transformers_post",
    "input_transformer_manager",
    "custom_exceptions",
    "CustomTB",
    "InteractiveTB",
    "SyntaxTB",
    "compile",
    "events",
    "displayhook",
    "display_pub",
    "display_trap",
    "builtin_trap",
    "_trait_values",
)
KERNEL_ATTRS = ("shell", "session", "shell_handlers", "iopub_socket", "iopub_thread", "shell_stream", "_trait_values")
KIT_MODULES = ("collabkit.nb", "collabkit.scaffold")  # the kit's helpers the tests call
KIT_NAMES = {"ck": "collabkit.nb"}  # the names the notebooks' read-only cells bind them to
SYS_ATTRS = (
    "stdout",
    "stderr",
    "stdin",
    "displayhook",
    "excepthook",
    "unraisablehook",
    "breakpointhook",
    "__stdout__",
    "__stderr__",
    "__displayhook__",
    "__excepthook__",
)


def digest(source: str) -> str:
    """How the worker names a graded cell to the kernel: the sha256 of the code it sends."""
    return hashlib.sha256(source.encode()).hexdigest()


def _is_method(value) -> bool:
    return callable(value) or isinstance(value, (staticmethod, classmethod, property))


class Machinery:
    """What decides how IPython runs a cell and reports it, as places that hold a value.

    `take()` reads every place; `put(state)` writes a state back. The places are found once, at
    kernel start: `items` (a dict and a key: instance attributes, module globals, sys's hooks, the
    namespace's `__builtins__`), `classes` (every class attribute of the classes involved), and
    `containers` (lists and dicts whose contents matter: the builtins, transformer lists, event
    callbacks, the kernel's message handlers).
    """

    def __init__(self, shell, kernel=None, modules: list = (), names: dict | None = None):
        itm, events = shell.input_transformer_manager, shell.events
        self.kit = [(shell.user_ns, name, module) for name, module in (names or {}).items()]
        for name in SHELL_ATTRS:
            getattr(shell, name, None)  # lazily created traits exist from now on
        objects = [(shell, SHELL_ATTRS), (kernel, KERNEL_ATTRS)] if kernel is not None else [(shell, SHELL_ATTRS)]
        if kernel is not None:
            objects += [(kernel.session, ()), (kernel.iopub_socket, ()), (kernel.iopub_thread, ())]
            objects += [(kernel.shell_stream, ()), (kernel.shell_stream.socket, ())]
        for obj in (
            shell.compile,
            events,
            itm,
            shell.InteractiveTB,
            shell.SyntaxTB,
            shell.displayhook,
            shell.display_pub,
            sys.stdout,
            sys.stderr,
        ):
            objects.append((obj, ("write", "writelines", "flush")))
        self.classes = []
        for obj, _ in objects:
            for cls in type(obj).__mro__:
                if cls.__flags__ & HEAPTYPE and cls not in self.classes:
                    self.classes.append(cls)
        self.items = []
        for obj, attrs in objects:
            d = getattr(obj, "__dict__", None)
            if d is None:
                continue
            names = set(attrs) | {n for c in type(obj).__mro__ for n, v in vars(c).items() if _is_method(v)}
            self.items += [(d, n) for n in sorted(names)]
            traits = d.get("_trait_values")
            if isinstance(traits, dict):
                self.items += [(traits, n) for n in attrs if n in traits]
        owners = {sys.modules.get(c.__module__) for c in self.classes} - {None}
        for mod in sorted(owners, key=lambda m: m.__name__):
            g = vars(mod)
            self.items += [(g, n) for n, v in g.items() if _is_method(v) or isinstance(v, types.ModuleType)]
        for module in modules:  # the kit's helpers the tests call (ck.valid_mse): every global
            self.items += [(vars(module), n) for n in vars(module)]
            package, _, leaf = module.__name__.rpartition(".")
            self.items += [(vars(sys.modules[package]), leaf)] if package else []
        self.items += [(ns, name) for ns, name, _ in self.kit]
        self.items += [(vars(sys), n) for n in SYS_ATTRS]
        self.items += [(ns, "__builtins__") for ns in {id(shell.user_ns): shell.user_ns}.values()]
        self.containers = [
            shell.ast_transformers,
            shell.input_transformers_post,
            itm.cleanup_transforms,
            itm.line_transforms,
            itm.token_transformers,
            events.callbacks,
            *events.callbacks.values(),
            gc.callbacks,  # run in the middle of any cell, whenever the collector runs
        ]
        if kernel is not None:
            self.containers.append(kernel.shell_handlers)
        self.builtins = vars(builtins)

    def take(self) -> tuple:
        """The values every place holds now."""
        return (
            {k: v for k, v in self.builtins.items()},
            [(cls, dict(vars(cls))) for cls in self.classes],
            [(d, n, d.get(n, ABSENT)) for d, n in self.items],
            [(c, list(c) if isinstance(c, list) else dict(c)) for c in self.containers],
            (sys.gettrace(), sys.getprofile()),
        )

    def trusted(self) -> tuple:
        """The values every place holds now, with the kit's names in the namespace bound to the kit
        (`ck` is collabkit.nb for the tests, whatever a student bound it to)."""
        names, classes, items, containers, hooks = self.take()
        return names, classes, items + [(ns, name, module) for ns, name, module in self.kit], containers, hooks

    def put(self, state: tuple) -> None:
        """Make every place hold what it held in `state`. The builtins go first, by plain dict operations,
        so the rest of this code runs on the real ones; builtins added since are left (they shadow
        nothing)."""
        names, classes, items, containers, (trace, profile) = state
        now = self.builtins
        for k, v in names.items():
            if now.get(k, ABSENT) is not v:
                now[k] = v
        for cls, attrs in classes:
            current = vars(cls)
            for name in [n for n in current if n not in attrs]:
                _quietly(DEL_CLASS_ATTR, cls, name)
            for name, value in attrs.items():
                if current.get(name, ABSENT) is not value:
                    _quietly(SET_CLASS_ATTR, cls, name, value)
        for d, name, value in items:
            if value is ABSENT:
                d.pop(name, None)
            elif d.get(name, ABSENT) is not value:
                d[name] = value
        for c, contents in containers:
            if isinstance(c, list):
                c[:] = contents
            else:
                for k in [k for k in c if k not in contents]:
                    del c[k]
                c.update(contents)
        sys.settrace(trace)
        sys.setprofile(profile)


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except (AttributeError, TypeError):  # a slot that cannot be written (__dict__, __weakref__)
        pass


def graded_code(kernel, msg, digests: frozenset) -> bool:
    """Whether a raw shell message (zmq frames) is an execute_request for a graded test cell. Reads the
    frames without checking the signature: dispatch_shell checks it once, and a second check would
    refuse the message as a replay."""
    try:
        _, parts = kernel.session.feed_identities(msg, copy=False)
        raw = [bytes(getattr(p, "bytes", p)) for p in parts[1:5]]
        if json.loads(raw[0]).get("msg_type") != "execute_request":
            return False
        return digest(json.loads(raw[3]).get("code", "")) in digests
    except Exception:  # noqa: BLE001  a malformed message: dispatch_shell reports it
        return False


def guard(kernel, digests: frozenset):
    """Wrap the kernel's shell-message entry point: a graded cell runs on the machinery captured now."""
    import importlib

    modules = [importlib.import_module(m) for m in KIT_MODULES]
    names = {name: importlib.import_module(m) for name, m in KIT_NAMES.items()}
    machinery = Machinery(kernel.shell, kernel, modules, names)
    pristine = machinery.trusted()
    handle = kernel.shell_main

    async def shell_main(subshell_id, msg):
        if not graded_code(kernel, msg, digests):
            return await handle(subshell_id, msg)
        theirs = machinery.take()
        machinery.put(pristine)
        try:
            return await handle(subshell_id, msg)
        finally:
            machinery.put(theirs)

    kernel.shell_main = shell_main  # Kernel.start() binds it to the shell socket


def main(argv: list[str]) -> None:
    digests, *rest = argv
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="ipython-")
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(rest)
    guard(app.kernel, frozenset(filter(None, digests.split(","))))
    app.start()


if __name__ == "__main__":
    main(sys.argv[1:])
