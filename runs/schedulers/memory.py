"""The memory scheduler: each "container" is a thread of this process interpreting a small POSIX-shell subset. For
testing the orchestrator's semantics (DAG order, ``depends_on``, parallelism, timeouts, cancellation, adoption after
a worker "crash") on machines without Docker. ``get_scheduler`` refuses it unless ``GOFER_DEV_SCHEDULERS`` is true,
and always in sandbox mode.

State is process-global: a module-level registry under one lock, so every ``MemoryScheduler`` instance of the process
sees the same containers (a second instance adopting them is how tests play a second worker after a crash), and no
other process sees any (a server process started by a test cannot attach to them). ``reset()`` kills and forgets
everything, for tests. Handles are 64 hex digits, as Docker ids are; names follow Docker's rule.

Images: any name is accepted unless it is in ``MISSING_IMAGES``, which makes ``start`` raise NoSuchImage (a pull
failure). ``image_digest`` is ``"memory@sha256:" + sha256(image name)``. CPU and memory limits, registry credentials
and ``always_pull`` are ignored.

The program is ``entrypoint + command``, as Docker runs it, with these forms:

- ``["sh", "-c", SCRIPT, ...]`` or ``["/bin/sh", "-c", SCRIPT, ...]``: SCRIPT in the shell subset below; arguments
  after it (``$0``, ``$1``...) are ignored, since the subset has no positional parameters;
- ``["sh"]``: a shell reading its stdin, which is closed: exits 0 at once (busybox's default command);
- a program run directly, without a shell and so without expansion: ``echo``, ``printf``, ``sleep``, ``true``,
  ``false``, ``env``, ``printenv``, ``seq``, ``cat`` (also as ``/bin/NAME``), e.g. ``["echo", "after"]``,
  ``["seq", "1", "60000"]``.

The environment is ``spec.env`` alone (Docker also sets PATH, HOSTNAME and HOME). Every command's stdin is empty.
Signals behave as in a container whose init forwards them to the shell (``GOFER_DOCKER_INIT``): ``stop`` delivers
SIGTERM: with no trap the container exits 143 at once; with ``trap 'CMDS' TERM`` the current ``sleep`` is cut short
(a real shell would finish it first) and CMDS run before the next command, ending the container only if they
``exit``; with ``trap '' TERM`` it is ignored. ``kill`` ends the container with 137 at once, whatever it does.

The shell subset, everything else being refused:

- lists: commands separated by ``;`` or newlines, ``&&`` and ``||`` (a newline may follow either), ``# comments``,
  ``\\`` line continuations;
- ``while LIST; do LIST; done`` (any condition; in practice ``while true`` ended by ``exit`` or a signal);
- words: unquoted text, ``'single quotes'``, ``"double quotes"`` (where ``\\`` escapes ``$ " \\`` and a newline),
  ``\\x`` outside quotes; ``$NAME`` and ``${NAME}`` from the environment (unset is empty), split on spaces, tabs and
  newlines when unquoted;
- redirections of simple commands: ``>&2`` and ``1>&2`` (stdout to stderr), ``2>&1`` (stderr to stdout);
- commands: ``echo [-n] ...`` (no backslash escapes, as busybox's echo), ``printf FORMAT [ARG...]`` with ``%s``,
  ``%%``, ``\\n``, ``\\t``, ``\\\\`` (the format is reused while arguments remain), ``sleep N`` (seconds, fractions
  allowed), ``exit [N]``, ``true``, ``false``, ``env`` and ``printenv`` without arguments (``KEY=value`` lines sorted
  by key), ``seq [FIRST] LAST`` (integers), ``cat`` without arguments (reads the empty stdin: prints nothing),
  ``trap ACTION TERM`` (also ``SIGTERM`` or ``15``; ACTION ``''`` ignores, ``-`` restores the default), ``test``
  on strings only: ``test S`` and ``test -n S`` (S is not empty), ``test -z S`` (S is empty), ``test S1 = S2`` and
  ``test S1 != S2`` (not its ``[ ... ]`` form, nor numbers, files or ``!``, ``-a``, ``-o``).

Refused: pipes, ``&``, subshells and groups, ``$(...)``, backquotes, ``$((...))``, ``$?`` and other special
parameters, ``${NAME...}`` operators, assignments, other redirections, globs (unquoted ``* ? [``), ``~``, ``if``,
``for``, ``case``, ``until``, ``!``, functions, other commands and other options or operands of the commands above.
A refused construct or command name written literally in the script is found before anything runs; one that only
appears at run time (an operand such as ``sleep 1m``, a command name from a variable, anything in a trap's action,
which is parsed when ``trap`` runs) stops the script there. Either way the container writes ``memory scheduler:
unsupported: <word>`` on stderr and exits 127, even where a real shell would report an unknown command and go on, so
that a test never passes by silently diverging from busybox. A syntax error (an unterminated quote, a missing
``done``) writes ``memory scheduler: syntax error: ...`` and exits 2, as sh does. No Python traceback ever reaches a
container's log: a bug in this module ends the container with 125 and logs the traceback to the worker's log.

A log line is stamped when its newline is written; text still without one is logged when the container ends.

``inspect(handle)`` tells a test what ``docker inspect`` would: the container's state, exit code, times,
environment and labels, read from the registry without going through a ``MemoryScheduler`` (which a test may have
patched to misbehave).

``exec`` runs a command in a running container in the same environment, without a TTY: stdout and stderr are one
stream, input is not echoed, there is no prompt. ``sh`` or ``/bin/sh`` alone reads commands from the session's input
line by line (a ``while`` may span lines; ``\\r`` counts as a newline, Ctrl-D ends the input) and runs them until
``exit`` or the end of the input; an unsupported command is reported and the next one read. Any other command (``sh
-c SCRIPT`` included) runs once. A session ends when its command does, when it is closed and when the container ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import queue
import re
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from runs.schedulers.base import (
    LABEL_MANAGED,
    LABEL_TASK_EXECUTION,
    ContainerSpec,
    EngineUnavailable,
    ExecSession,
    LogLine,
    NoSuchContainer,
    NoSuchImage,
    Scheduler,
    SchedulerError,
    Started,
    State,
    Status,
    check_adoptable,
    prunable,
)

logger = logging.getLogger(__name__)

# Images whose "pull" fails: start() raises NoSuchImage for them. Tests add to it; reset() empties it.
MISSING_IMAGES: set[str] = set()

# One lock for the registry and every container's state. Each container has its own Condition on it, so a container
# writing many lines wakes only those waiting on that container.
_lock = threading.RLock()
_by_handle: dict[str, _Container] = {}
_by_name: dict[str, str] = {}

_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # what Docker accepts
_ORDINARY = re.compile(r"[^ \t\n#;&|>()<`'\"\\$*?\[~]*")  # characters that are literal wherever they are
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_FIELD_SEPARATORS = re.compile(r"[ \t\n]+")  # the default IFS
_DURATION = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
_INTEGER = re.compile(r"-?[0-9]+")
_EXIT_STATUS = re.compile(r"[0-9]+")
_SPECIAL_PARAMETERS = set("(?$#@*!-0123456789")
_REDIRECT_ENDS = ("", " ", "\t", "\n", ";", "&", "|")  # what may follow ">&1" or ">&2" (else it is ">&2x")
_UNSUPPORTED_KEYWORDS = {"if", "then", "elif", "else", "fi", "for", "until", "case", "esac", "{", "}", "!"}
_TERM_NAMES = {"TERM", "SIGTERM", "15"}
_PRINTF_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}
_SEQ_CHUNK = 1000  # seq writes this many lines at a time: one lock round per line would make 60,000 lines slow


def reset() -> None:
    """Kill every container, wait (a few seconds at most) for their threads to end, forget them all and empty
    MISSING_IMAGES. For tests: afterwards the engine is as new."""
    with _lock:
        containers = list(_by_handle.values())
        _by_handle.clear()
        _by_name.clear()
        MISSING_IMAGES.clear()
        for container in containers:
            container.finish(137)
    for container in containers:
        container.thread.join(timeout=5)


@dataclass(frozen=True)
class Inspected:
    """A container as ``inspect`` saw it."""

    name: str
    image: str
    state: State
    exit_code: int | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    env: dict[str, str]
    labels: dict[str, str]


def inspect(handle: str) -> Inspected | None:
    """The container ``handle`` (None if there is none, or it was removed), for tests: what ``docker inspect``
    tells of a Docker container."""
    with _lock:
        container = _by_handle.get(handle)
        if container is None:
            return None
        return Inspected(
            name=container.name,
            image=container.image,
            state=container.state,
            exit_code=container.exit_code,
            started_at=container.started_at,
            finished_at=container.finished_at,
            env=dict(container.env),
            labels=dict(container.labels),
        )


def image_digest(image: str) -> str:
    """What the memory engine reports as the digest of ``image``: stable for a name, different between names."""
    return "memory@sha256:" + hashlib.sha256(image.encode()).hexdigest()


# --- the shell: errors, words, parsing ---------------------------------------------------------------------------


class _ShellError(Exception):
    """A script the memory shell will not run; ``exit_code`` is the container's, the text goes to its stderr."""

    exit_code: int


class _Unsupported(_ShellError):
    exit_code = 127

    def __init__(self, word: str) -> None:
        super().__init__(f"unsupported: {word}")


class _SyntaxError(_ShellError):
    exit_code = 2

    def __init__(self, what: str) -> None:
        super().__init__(f"syntax error: {what}")


class _Incomplete(_SyntaxError):
    """The source ends inside a construct: an error for a script, a cue to read another line for an exec shell."""


class _ExitShell(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Dead(Exception):
    """The process was killed (or its exec session closed) while running: nothing more may run or be written."""


@dataclass(frozen=True)
class _Part:
    text: str  # literal text, or the variable's name when is_var
    quoted: bool
    is_var: bool = False


@dataclass(frozen=True)
class _Word:
    parts: tuple[_Part, ...]

    def literal(self) -> str | None:
        """The word's value when it holds no expansion (quotes removed), else None."""
        if any(part.is_var for part in self.parts):
            return None
        return "".join(part.text for part in self.parts)

    def bare(self) -> str | None:
        """The text of a word that is one unquoted literal: only such a word can be a keyword."""
        if len(self.parts) == 1 and not self.parts[0].quoted and not self.parts[0].is_var:
            return self.parts[0].text
        return None


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "op" (";", "&&", "||"), "newline", "redirect", "eof"
    text: str = ""
    word: _Word | None = None
    fds: tuple[int, int] = (0, 0)  # for a redirect: (fd, the fd it is made a copy of)

    def describe(self) -> str:
        if self.word is not None:
            return self.word.literal() or "a word"
        return {"newline": "newline", "eof": "end of script"}.get(self.kind, self.text)


class _Lexer:
    """Splits a script into tokens, refusing at once what the subset lacks (see the module docstring)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.at = 0
        self.tokens: list[_Token] = []
        self.parts: list[_Part] = []
        self.in_word = False

    def run(self) -> list[_Token]:
        source = self.source
        while self.at < len(source):
            char = source[self.at]
            if char in " \t":
                self.end_word()
                self.at += 1
            elif char == "\n":
                self.end_word()
                self.tokens.append(_Token("newline"))
                self.at += 1
            elif char == "#" and not self.in_word:
                end = source.find("\n", self.at)
                self.at = len(source) if end < 0 else end
            elif char in ";&|":
                self.operator(char)
            elif char == ">":
                self.redirect()
            elif char in "<()`":
                raise _Unsupported(char)
            elif char == "'":
                end = source.find("'", self.at + 1)
                if end < 0:
                    raise _Incomplete("unterminated single quote")
                self.add(source[self.at + 1 : end], quoted=True)
                self.at = end + 1
            elif char == '"':
                self.double_quoted()
            elif char == "\\":
                escaped = source[self.at + 1 : self.at + 2]
                if escaped != "\n":  # a backslash-newline joins the lines
                    self.add(escaped or "\\", quoted=True)
                self.at += 2
            elif char == "$":
                self.dollar(quoted=False)
            elif char in "*?[":
                raise _Unsupported(f"{char} (pathname expansion)")
            elif char == "~" and not self.in_word:
                raise _Unsupported("~")
            else:
                # A run of ordinary characters at once: a long word must not cost a copy per character.
                end = _ORDINARY.match(source, self.at).end()
                self.add(source[self.at : max(end, self.at + 1)], quoted=False)
                self.at = max(end, self.at + 1)
        self.end_word()
        self.tokens.append(_Token("eof"))
        return self.tokens

    def add(self, text: str, *, quoted: bool) -> None:
        # Adjacent literal text of one kind is one part: keywords and assignments are recognised on whole parts.
        if self.parts and not self.parts[-1].is_var and self.parts[-1].quoted == quoted:
            self.parts[-1] = _Part(self.parts[-1].text + text, quoted)
        else:
            self.parts.append(_Part(text, quoted))
        self.in_word = True

    def end_word(self) -> None:
        if self.in_word:
            self.tokens.append(_Token("word", word=_Word(tuple(self.parts))))
        self.parts, self.in_word = [], False

    def operator(self, char: str) -> None:
        doubled = self.source.startswith(char * 2, self.at)
        if char == ";" and doubled:
            raise _Unsupported(";;")
        if char != ";" and not doubled:
            raise _Unsupported(char)
        self.end_word()
        text = char * 2 if doubled else char
        self.tokens.append(_Token("op", text))
        self.at += len(text)

    def redirect(self) -> None:
        fd, explicit = 1, False
        if self.in_word and self.parts in ([_Part("1", False)], [_Part("2", False)]):
            # Digits right before ">" name the descriptor ("2>&1"), they are not a word.
            fd, explicit = int(self.parts[0].text), True
            self.parts, self.in_word = [], False
        self.end_word()
        source, at = self.source, self.at
        target = source[at + 2 : at + 3]
        if source.startswith(">&", at) and target in ("1", "2") and source[at + 3 : at + 4] in _REDIRECT_ENDS:
            written = (str(fd) if explicit else "") + ">&" + target
            self.tokens.append(_Token("redirect", written, fds=(fd, int(target))))
            self.at += 3
            return
        raise _Unsupported((str(fd) if explicit else "") + source[at:].split(None, 1)[0])

    def double_quoted(self) -> None:
        source = self.source
        self.at += 1
        text: list[str] = []
        while True:
            if self.at >= len(source):
                raise _Incomplete("unterminated double quote")
            char = source[self.at]
            if char == '"':
                self.add("".join(text), quoted=True)  # even when empty: "" is a word
                self.at += 1
                return
            if char == "\\" and source[self.at + 1 : self.at + 2] in ("$", "`", '"', "\\", "\n"):
                if source[self.at + 1] != "\n":
                    text.append(source[self.at + 1])
                self.at += 2
            elif char == "$":
                self.add("".join(text), quoted=True)
                text = []
                self.dollar(quoted=True)
            elif char == "`":
                raise _Unsupported("`")
            else:
                text.append(char)
                self.at += 1

    def dollar(self, *, quoted: bool) -> None:
        source, at = self.source, self.at
        following = source[at + 1 : at + 2]
        if following == "{":
            end = source.find("}", at + 2)
            if end < 0:
                raise _Incomplete("unterminated ${")
            name = source[at + 2 : end]
            if not _VARIABLE.fullmatch(name):
                raise _Unsupported("${" + name + "}")
            self.parts.append(_Part(name, quoted, is_var=True))
            self.in_word = True
            self.at = end + 1
        elif match := _VARIABLE.match(source, at + 1):
            self.parts.append(_Part(match.group(), quoted, is_var=True))
            self.in_word = True
            self.at = match.end()
        elif following and following in _SPECIAL_PARAMETERS:
            raise _Unsupported("$((" if source.startswith("$((", at) else "$" + following)
        else:  # "$" before anything else is itself
            self.add("$", quoted=quoted)
            self.at += 1


@dataclass(frozen=True)
class _Simple:
    words: tuple[_Word, ...]
    redirects: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _While:
    condition: _List
    body: _List


@dataclass(frozen=True)
class _AndOr:
    first: _Simple | _While
    rest: tuple[tuple[str, _Simple | _While], ...]


@dataclass(frozen=True)
class _List:
    items: tuple[_AndOr, ...]


class _Parser:
    """Recursive descent over the tokens of the subset's grammar:

    list := and_or ((";" | newline) and_or)*;  and_or := command (("&&" | "||") newline* command)*;
    command := "while" list "do" list "done" | (word | redirect)+
    """

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def keyword(self) -> str | None:
        word = self.token.word
        return word.bare() if word is not None else None

    def skip_newlines(self) -> None:
        while self.token.kind == "newline":
            self.at += 1

    def program(self) -> _List:
        program = self.list(frozenset())
        if self.token.kind != "eof":
            raise _SyntaxError(f"unexpected {self.token.describe()}")
        return program

    def list(self, terminators: frozenset[str]) -> _List:
        items: list[_AndOr] = []
        while True:
            self.skip_newlines()
            if self.token.kind == "eof" or self.keyword() in terminators:
                return _List(tuple(items))
            items.append(self.and_or())
            if self.token.kind == "newline" or self.token.text == ";":
                self.at += 1
            else:
                return _List(tuple(items))

    def and_or(self) -> _AndOr:
        first = self.command()
        rest = []
        while self.token.kind == "op" and self.token.text in ("&&", "||"):
            operator = self.token.text
            self.at += 1
            self.skip_newlines()
            rest.append((operator, self.command()))
        return _AndOr(first, tuple(rest))

    def command(self) -> _Simple | _While:
        token = self.token
        if token.kind == "eof":
            raise _Incomplete("the script ends where a command was expected")
        if token.kind not in ("word", "redirect"):
            raise _SyntaxError(f"unexpected {token.describe()}")
        keyword = self.keyword()
        if keyword == "while":
            return self.while_loop()
        if keyword in ("do", "done"):
            raise _SyntaxError(f"unexpected {keyword}")
        if keyword in _UNSUPPORTED_KEYWORDS:
            raise _Unsupported(keyword)
        return self.simple()

    def while_loop(self) -> _While:
        self.at += 1
        condition = self.list(frozenset({"do"}))
        self.expect("do")
        body = self.list(frozenset({"done"}))
        self.expect("done")
        if not condition.items or not body.items:
            raise _SyntaxError("a while loop needs a condition and a body")
        if self.token.kind == "redirect":
            raise _Unsupported(f"{self.token.text} after done (only simple commands are redirected)")
        return _While(condition, body)

    def expect(self, keyword: str) -> None:
        if self.token.kind == "eof":
            raise _Incomplete(f"missing {keyword}")
        if self.keyword() != keyword:
            raise _SyntaxError(f"unexpected {self.token.describe()} where {keyword} was expected")
        self.at += 1

    def simple(self) -> _Simple:
        words: list[_Word] = []
        redirects: list[tuple[int, int]] = []
        while self.token.kind in ("word", "redirect"):
            if self.token.word is not None:
                words.append(self.token.word)
            else:
                redirects.append(self.token.fds)
            self.at += 1
        if words:
            _check_command_word(words[0])
        return _Simple(tuple(words), tuple(redirects))


def _check_command_word(word: _Word) -> None:
    """Refuse, before anything runs, a command the subset cannot run when its name is written literally."""
    first = word.parts[0]
    if not first.is_var and not first.quoted and _ASSIGNMENT.match(first.text):
        raise _Unsupported(first.text)
    name = word.literal()
    if name is not None and _program_name(name) not in _COMMANDS:
        raise _Unsupported(name)


def _parse(source: str) -> _List:
    """The program a script means. Raises _Unsupported, _SyntaxError or _Incomplete."""
    return _Parser(_Lexer(source).run()).program()


def _program_name(word: str) -> str:
    """``echo`` for ``/bin/echo`` too: busybox has its applets in /bin. Shell builtins have no path."""
    name = word.removeprefix("/bin/")
    return name if name in _PROGRAMS or name == "sh" else word


# --- the shell: running -----------------------------------------------------------------------------------------


class _Process(ABC):
    """Where a shell runs: a container's main program or an exec session. Its state is guarded by ``_lock``;
    ``changed`` is notified whenever a signal, an end or (for an exec) input arrives."""

    def __init__(self, env: dict[str, str], changed: threading.Condition) -> None:
        self.env = env
        self.changed = changed
        self.term_action: _List | None = None  # the TERM trap; None: the default action
        self.term_ignored = False
        self.term_pending = False  # stop() delivered TERM to a trap that has not run yet

    @abstractmethod
    def alive(self) -> bool:
        """Whether the process may still run (called under ``_lock``)."""

    @abstractmethod
    def write(self, stream: str, text: str) -> None:
        """Take output (called under ``_lock`` while alive)."""

    def check(self) -> None:
        """Raise _Dead once the process may no longer run (killed, ended, or its exec session closed)."""
        with _lock:
            if not self.alive():
                raise _Dead

    def emit(self, stream: str, text: str) -> None:
        with _lock:
            self.check()
            self.write(stream, text)

    def take_term(self) -> _List | None:
        """The trap to run now if TERM was delivered since the last call, else None. Raises _Dead."""
        with _lock:
            self.check()
            if not self.term_pending:
                return None
            self.term_pending = False
            return self.term_action

    def set_trap(self, action: _List | None, *, ignored: bool) -> None:
        with _lock:
            self.check()
            self.term_action, self.term_ignored = action, ignored

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if TERM is delivered to a trap. Raises _Dead when killed meanwhile."""
        deadline = time.monotonic() + seconds
        with _lock:
            while True:
                self.check()
                remaining = deadline - time.monotonic()
                if self.term_pending or remaining <= 0:
                    return
                self.changed.wait(remaining)


class _Shell:
    """Runs programs of the subset in one process. ``status`` is what ``$?`` would be."""

    def __init__(self, process: _Process) -> None:
        self.process = process
        self.status = 0
        self._in_trap = False

    def run_argv(self, argv: list[str]) -> int:
        """Run a container's (or exec's) program (the forms in the module docstring); its exit status. Raises
        _ShellError for what the subset lacks and _Dead if killed."""
        if not argv:
            raise _Unsupported("an empty command (there is no image default command here)")
        name = _program_name(argv[0])
        try:
            if name == "sh":
                self.run_list(self._script(argv[1:]))
            elif name in _PROGRAMS:
                self.checkpoint()
                self.status = _PROGRAMS[name](self, [name, *argv[1:]], "stdout")
            else:
                raise _Unsupported(argv[0])
            self.checkpoint()  # a trap for a TERM that came during the last command runs before the shell ends
        except _ExitShell as exit_:
            return exit_.code
        return self.status

    @staticmethod
    def _script(options: list[str]) -> _List:
        if not options:
            return _List(())  # sh reading its stdin, which is empty
        if options[0] != "-c":
            raise _Unsupported(f"sh {options[0]}")
        if len(options) < 2:
            raise _Unsupported("sh -c without a script")
        return _parse(options[1])

    def run_list(self, program: _List) -> int:
        for item in program.items:
            status = self._run_command(item.first)
            for operator, command in item.rest:
                if (status == 0) == (operator == "&&"):
                    status = self._run_command(command)
            self.status = status
        return self.status

    def _run_command(self, command: _Simple | _While) -> int:
        if isinstance(command, _While):
            status = 0
            while self.run_list(command.condition) == 0:
                status = self.run_list(command.body)
            self.status = status
            return status
        self.checkpoint()
        argv = [field for word in command.words for field in self._expand(word)]
        streams = {1: "stdout", 2: "stderr"}
        for fd, target in command.redirects:
            streams[fd] = streams[target]
        if argv:
            name = _program_name(argv[0])
            if name not in _COMMANDS:  # a name that came from a variable
                raise _Unsupported(argv[0])
            self.status = _COMMANDS[name](self, [name, *argv[1:]], streams[1])
        else:
            self.status = 0
        return self.status

    def _expand(self, word: _Word) -> list[str]:
        """The fields a word becomes: variables substituted, unquoted ones split on IFS whitespace."""
        fields: list[str] = []
        current, started = "", False
        for part in word.parts:
            if not part.is_var or part.quoted:
                current += self.process.env.get(part.text, "") if part.is_var else part.text
                started = True
                continue
            # An unquoted expansion: a separator at its start or end, or inside it, ends the field being built.
            for index, piece in enumerate(_FIELD_SEPARATORS.split(self.process.env.get(part.text, ""))):
                if index > 0 and started:
                    fields.append(current)
                    current, started = "", False
                if piece:
                    current += piece
                    started = True
        if started:
            fields.append(current)
        return fields

    def checkpoint(self) -> None:
        """Between commands: raise _Dead if killed, run the TERM trap if TERM was delivered (not from within it)."""
        if self._in_trap:
            self.process.check()
            return
        action = self.process.take_term()
        if action is None:
            return
        status, self._in_trap = self.status, True
        try:
            self.run_list(action)
        finally:
            self._in_trap = False
        self.status = status  # as in sh, the trap leaves $? as it found it

    def write(self, stream: str, text: str) -> None:
        self.process.emit(stream, text)


def _refuse(argv: list[str]) -> _Unsupported:
    return _Unsupported(" ".join(argv))


def _echo(shell: _Shell, argv: list[str], stream: str) -> int:
    args, newline = argv[1:], True
    while args and re.fullmatch(r"-n+", args[0]):
        args, newline = args[1:], False
    if args and re.fullmatch(r"-[neE]+", args[0]):
        raise _Unsupported(f"echo {args[0]}")
    shell.write(stream, " ".join(args) + ("\n" if newline else ""))
    return 0


def _printf(shell: _Shell, argv: list[str], stream: str) -> int:
    if len(argv) < 2:
        raise _refuse(argv)
    form, values = argv[1], argv[2:]
    pieces: list[str | None] = []  # None: a %s
    at = 0
    while at < len(form):
        char, following = form[at], form[at + 1 : at + 2]
        if char == "%" and following in ("s", "%"):
            pieces.append(None if following == "s" else "%")
        elif char == "%":
            raise _Unsupported(f"printf %{following}")
        elif char == "\\" and following in _PRINTF_ESCAPES:
            pieces.append(_PRINTF_ESCAPES[following])
        elif char == "\\":
            raise _Unsupported(f"printf \\{following}")
        else:
            pieces.append(char)
            at += 1
            continue
        at += 2
    output: list[str] = []
    used = 0
    while True:  # the format is used again while arguments remain, as long as it takes any
        before = used
        for piece in pieces:
            if piece is None:
                output.append(values[used] if used < len(values) else "")
                used += 1
            else:
                output.append(piece)
        if used >= len(values) or used == before:
            break
    shell.write(stream, "".join(output))
    return 0


def _sleep(shell: _Shell, argv: list[str], stream: str) -> int:
    if len(argv) != 2 or not _DURATION.fullmatch(argv[1]):
        raise _refuse(argv)
    shell.process.sleep(float(argv[1]))
    return 0


def _exit(shell: _Shell, argv: list[str], stream: str) -> int:
    if len(argv) == 1:
        raise _ExitShell(shell.status)
    if len(argv) == 2 and _EXIT_STATUS.fullmatch(argv[1]):
        raise _ExitShell(int(argv[1]) & 255)
    raise _refuse(argv)


def _true(shell: _Shell, argv: list[str], stream: str) -> int:
    return 0


def _false(shell: _Shell, argv: list[str], stream: str) -> int:
    return 1


def _env(shell: _Shell, argv: list[str], stream: str) -> int:
    if len(argv) > 1:
        raise _refuse(argv)
    shell.write(stream, "".join(f"{key}={value}\n" for key, value in sorted(shell.process.env.items())))
    return 0


def _seq(shell: _Shell, argv: list[str], stream: str) -> int:
    bounds = argv[1:]
    if not 1 <= len(bounds) <= 2 or not all(_INTEGER.fullmatch(bound) for bound in bounds):
        raise _refuse(argv)
    first, last = (1, int(bounds[0])) if len(bounds) == 1 else (int(bounds[0]), int(bounds[1]))
    for start in range(first, last + 1, _SEQ_CHUNK):
        shell.write(stream, "".join(f"{n}\n" for n in range(start, min(start + _SEQ_CHUNK, last + 1))))
    return 0


def _cat(shell: _Shell, argv: list[str], stream: str) -> int:
    if len(argv) > 1:
        raise _refuse(argv)
    return 0  # stdin is empty


def _trap(shell: _Shell, argv: list[str], stream: str) -> int:
    if len(argv) != 3 or argv[2] not in _TERM_NAMES:
        raise _refuse(argv)
    action = argv[1]
    if action == "-":
        shell.process.set_trap(None, ignored=False)
    elif action == "":
        shell.process.set_trap(None, ignored=True)
    else:
        shell.process.set_trap(_parse(action), ignored=False)
    return 0


def _test(shell: _Shell, argv: list[str], stream: str) -> int:
    operands = argv[1:]
    if len(operands) == 1 and operands[0] not in ("!", "-n", "-z"):
        return 0 if operands[0] else 1
    if len(operands) == 2 and operands[0] in ("-n", "-z"):
        return 0 if bool(operands[1]) == (operands[0] == "-n") else 1
    if len(operands) == 3 and operands[1] in ("=", "!=") and "!" not in (operands[0], operands[2]):
        return 0 if (operands[0] == operands[2]) == (operands[1] == "=") else 1
    raise _refuse(argv)


_Command = Callable[[_Shell, list[str], str], int]  # (shell, argv with the bare name first, stdout's stream) -> status
# Programs exist as files in busybox and can be run without a shell; builtins exist only inside one.
_PROGRAMS: dict[str, _Command] = {
    "echo": _echo,
    "printf": _printf,
    "sleep": _sleep,
    "true": _true,
    "false": _false,
    "env": _env,
    "printenv": _env,
    "seq": _seq,
    "cat": _cat,
    "test": _test,
}
_COMMANDS: dict[str, _Command] = {**_PROGRAMS, "exit": _exit, "trap": _trap}


# --- containers -----------------------------------------------------------------------------------------------------


class _Container(_Process):
    """One container: its spec, its state, its log, and the thread running its program."""

    def __init__(self, handle: str, spec: ContainerSpec) -> None:
        super().__init__(dict(spec.env), threading.Condition(_lock))
        self.handle = handle
        self.name = spec.name
        self.argv = [*(spec.entrypoint or []), *(spec.command or [])]
        self.labels = {**spec.labels, LABEL_MANAGED: "true"}
        self.image = spec.image
        self.image_digest = image_digest(spec.image)
        self.state = State.PENDING
        self.exit_code: int | None = None
        self.started_at: dt.datetime | None = None
        self.finished_at: dt.datetime | None = None
        self.message = ""
        self.lines: list[tuple[dt.datetime, str, str]] = []  # (time, stream, text), in the order written
        # Text written without its newline yet, per stream, in the order those lines began.
        self._unfinished: dict[str, str] = {}
        self._last_time: dt.datetime | None = None
        self.thread = threading.Thread(target=self._run, name=f"gofer-memory-{spec.name}", daemon=True)

    def alive(self) -> bool:
        return self.state == State.RUNNING

    def _now(self) -> dt.datetime:
        # Never earlier than a time already given: the log's times stay in order even if the clock steps back.
        now = dt.datetime.now(dt.UTC)
        if self._last_time is not None and now < self._last_time:
            now = self._last_time
        self._last_time = now
        return now

    def write(self, stream: str, text: str) -> None:
        """Complete lines go to the log, stamped now; the rest waits for its newline (or the end)."""
        *complete, rest = (self._unfinished.get(stream, "") + text).split("\n")
        if complete:
            self._unfinished.pop(stream, None)
            now = self._now()
            self.lines.extend((now, stream, line) for line in complete)
            self.changed.notify_all()
        if rest:
            self._unfinished[stream] = rest

    def finish(self, exit_code: int, message: str = "") -> None:
        """Record the end, once: unfinished lines are logged as they are (as Docker returns a last line without a
        newline), then the state, exit code and finish time. Nothing the program does afterwards counts."""
        with _lock:
            if self.state == State.EXITED:
                return
            now = self._now()
            self.lines.extend((now, stream, text) for stream, text in self._unfinished.items())
            self._unfinished.clear()
            self.state, self.exit_code, self.finished_at, self.message = State.EXITED, exit_code, now, message
            self.changed.notify_all()

    def _run(self) -> None:
        with _lock:
            if self.state != State.PENDING:
                return  # killed before it began
            self.state, self.started_at = State.RUNNING, self._now()
            self.changed.notify_all()
        message = ""
        try:
            exit_code = _Shell(self).run_argv(self.argv)
        except _Dead:
            return  # stop() or kill() recorded the end
        except _ShellError as error:
            message = f"memory scheduler: {error}"
            with contextlib.suppress(_Dead):
                self.emit("stderr", message + "\n")
            exit_code = error.exit_code
        except Exception:
            # A bug in this module must still end the container (a run would wait for it forever), and the
            # traceback belongs in the worker's log, not the task's.
            logger.exception("the memory scheduler failed running %s", self.name)
            message = "memory scheduler: internal error (see the worker's log)"
            with contextlib.suppress(_Dead):
                self.emit("stderr", message + "\n")
            exit_code = 125  # Docker's code for "the engine failed", as opposed to the program
        self.finish(exit_code, message)


# --- exec -------------------------------------------------------------------------------------------------------------


class _ExecProcess(_Process):
    """A command run by ``exec``: the container's environment, output to a queue, input from ``send``."""

    def __init__(self, container: _Container) -> None:
        super().__init__(container.env, container.changed)
        self.container = container
        self.closed = False
        self.output: queue.Queue[bytes | None] = queue.Queue()
        self._input = bytearray()
        self._input_ended = False

    def alive(self) -> bool:
        return not self.closed and self.container.state == State.RUNNING

    def write(self, stream: str, text: str) -> None:
        self.output.put(text.encode("utf-8"))

    def feed(self, data: bytes) -> None:
        with _lock:
            end = data.find(b"\x04")  # Ctrl-D: the end of the input
            if end >= 0:
                data, self._input_ended = data[:end], True
            self._input += data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            self.changed.notify_all()

    def read_line(self) -> str | None:
        """The next input line (without its newline), waiting for it; None at the end of the input. Raises _Dead."""
        with _lock:
            while True:
                self.check()
                end = self._input.find(b"\n")
                if end >= 0 or (self._input_ended and self._input):
                    end = end if end >= 0 else len(self._input)
                    line = bytes(self._input[:end])
                    del self._input[: end + 1]
                    return line.decode("utf-8", errors="replace")
                if self._input_ended:
                    return None
                self.changed.wait()


class _MemoryExecSession(ExecSession):
    """One ``exec``: its command runs in a thread of its own, output is handed over through a queue."""

    def __init__(self, container: _Container, command: list[str]) -> None:
        self._process = _ExecProcess(container)
        self._ended = False
        self._thread = threading.Thread(
            target=self._run, args=(command,), name=f"gofer-memory-exec-{container.name}", daemon=True
        )
        self._thread.start()

    def _run(self, command: list[str]) -> None:
        shell = _Shell(self._process)
        try:
            if len(command) == 1 and _program_name(command[0]) == "sh":
                self._interact(shell)
            else:
                shell.run_argv(command)
        except _ShellError as error:
            self._report(error)
        except _Dead:
            pass  # closed, or the container ended
        finally:
            self._process.output.put(None)

    def _interact(self, shell: _Shell) -> None:
        pending = ""
        while (line := self._process.read_line()) is not None:
            pending += line + "\n"
            try:
                program = _parse(pending)
            except _Incomplete:
                continue  # a quote or a loop goes on on the next line
            except _ShellError as error:
                self._report(error)
                pending = ""
                continue
            pending = ""
            try:
                shell.run_list(program)
            except _ExitShell:
                return
            except _ShellError as error:
                self._report(error)
        if pending.strip():
            self._report(_SyntaxError("the input ended inside a command"))

    def _report(self, error: _ShellError) -> None:
        with contextlib.suppress(_Dead):
            self._process.emit("stderr", f"memory scheduler: {error}\n")

    def send(self, data: bytes) -> None:
        if self._process.closed or not self._thread.is_alive():
            raise SchedulerError("the attached command no longer accepts input", permanent=True)
        self._process.feed(data)

    def recv(self, timeout: float) -> bytes | None:
        if self._ended:
            return None
        try:
            chunk = self._process.output.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return b""
        parts = []
        while chunk is not None:
            parts.append(chunk)
            try:
                chunk = self._process.output.get_nowait()
            except queue.Empty:
                return b"".join(parts)
        # The end: what came before it is returned first, None from the next call on.
        self._ended = True
        return b"".join(parts) if parts else None

    def close(self) -> None:
        """End the command (at its next step; a sleep is cut short) and wait for it, a couple of seconds at most."""
        with _lock:
            self._process.closed = True
            self._process.changed.notify_all()
        self._thread.join(timeout=2)


# --- the scheduler ------------------------------------------------------------------------------------------------


def _discard(handle: str) -> bool:
    """Kill and forget a container; whether there was one."""
    with _lock:
        container = _by_handle.pop(handle, None)
        if container is None:
            return False
        del _by_name[container.name]
        container.finish(137)
        return True


class MemoryScheduler(Scheduler):
    """Threads of this process as containers (module docstring). Holds no state of its own: every instance sees the
    same containers, and all methods are safe to call from any thread."""

    name = "memory"

    def start(self, spec: ContainerSpec) -> Started:
        """Run ``spec`` in a new thread, or adopt the container named ``spec.name``. Returns once the program has
        begun. Raises NoSuchImage for an image in MISSING_IMAGES, a permanent SchedulerError for a name Docker
        would refuse, EngineUnavailable if no thread can be started."""
        if not _CONTAINER_NAME.fullmatch(spec.name):
            raise SchedulerError(f"{spec.name!r} cannot name a container", permanent=True)
        with _lock:
            handle = _by_name.get(spec.name)
            if handle is not None:
                container = _by_handle[handle]
                check_adoptable(spec, container.labels)
                adopted = True
            else:
                if spec.image in MISSING_IMAGES:
                    raise NoSuchImage(
                        f"image {spec.image!r} is not on the memory engine and could not be pulled (MISSING_IMAGES)"
                    )
                container = _Container(secrets.token_hex(32), spec)
                _by_handle[container.handle] = container
                _by_name[spec.name] = container.handle
                try:
                    container.thread.start()
                except RuntimeError as exc:  # the process is out of threads: worth another try later
                    del _by_handle[container.handle], _by_name[spec.name]
                    raise EngineUnavailable(f"cannot start a thread for {spec.name}: {exc}") from exc
                adopted = False
            container.changed.wait_for(lambda: container.state != State.PENDING)
        return Started(handle=container.handle, image_digest=container.image_digest, adopted=adopted)

    def find(self, name: str) -> str | None:
        with _lock:
            return _by_name.get(name)

    def status(self, handle: str) -> Status:
        """The program's state; ``started_at``/``finished_at`` are when it began and ended. Removed or unknown
        containers are MISSING."""
        with _lock:
            container = _by_handle.get(handle)
            if container is None:
                return Status(State.MISSING)
            if container.state == State.EXITED:
                return Status(
                    State.EXITED, container.exit_code, container.started_at, container.finished_at, container.message
                )
            return Status(container.state, None, container.started_at)

    def logs(self, handle: str, cursor: dict[str, Any] | None, *, follow_for: float = 0.0) -> Iterator[LogLine]:
        """Lines after ``cursor`` (``{"i": <number of lines before>}``), in the order written. Without
        ``follow_for``: the lines there are now; with it, also those written within that many seconds, returning as
        soon as the container has exited (or is removed) and every line was returned. A line is logged when its
        newline is written, or at the end. Raises NoSuchContainer, or a permanent SchedulerError for a cursor this
        container never gave."""
        give_up = time.monotonic() + max(follow_for, 0.0)
        index = 0
        if cursor is not None:
            index = cursor.get("i") if isinstance(cursor, dict) else None
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise SchedulerError(f"invalid memory log cursor {cursor!r}", permanent=True)
        with _lock:
            container = _by_handle.get(handle)
            if container is None:
                raise NoSuchContainer(f"no memory container {handle[:12]}")
            if index > len(container.lines):
                raise SchedulerError(f"invalid memory log cursor {cursor!r}: beyond the log", permanent=True)
        while True:
            with _lock:
                while True:
                    batch = container.lines[index:]
                    ended = container.state == State.EXITED  # checked with the batch: the end follows the last line
                    remaining = give_up - time.monotonic()
                    if batch or ended or remaining <= 0:
                        break
                    container.changed.wait(remaining)
            # Yielded without the lock: the caller may take its time between lines.
            for number, (when, stream, text) in enumerate(batch, start=index + 1):
                yield LogLine(time=when, stream=stream, text=text, cursor={"i": number})
            index += len(batch)
            if ended or time.monotonic() >= give_up:
                return

    def stop(self, handle: str) -> None:
        """Deliver SIGTERM: the TERM trap runs (before the program's next command); with none the container exits
        143 now; with ``trap '' TERM`` nothing happens. Does nothing if the container is not running."""
        with _lock:
            container = _by_handle.get(handle)
            if container is None or container.state != State.RUNNING or container.term_ignored:
                return
            if container.term_action is None:
                container.finish(143)
                return
            container.term_pending = True
            container.changed.notify_all()

    def kill(self, handle: str) -> None:
        """The container exits 137 now. Does nothing if it already exited or is missing."""
        with _lock:
            container = _by_handle.get(handle)
            if container is not None:
                container.finish(137)

    def remove(self, handle: str) -> None:
        """Forget the container, killing it if it runs. Missing containers are not an error."""
        _discard(handle)

    def exec(self, handle: str, command: list[str]) -> ExecSession:
        """Run ``command`` in the running container (module docstring, last paragraph). Raises NoSuchContainer, or a
        permanent SchedulerError when the container is not running."""
        with _lock:
            container = _by_handle.get(handle)
            if container is None:
                raise NoSuchContainer(f"no memory container {handle[:12]}")
            if container.state != State.RUNNING:
                raise SchedulerError(f"cannot attach: container {container.name} is not running", permanent=True)
        return _MemoryExecSession(container, list(command))

    def prune(
        self, older_than: dt.timedelta, is_done: Callable[[str], bool], *, installation: str | None = None
    ) -> int:
        """Remove containers that exited more than ``older_than`` ago and whose task execution label ``is_done``
        accepts (``is_done`` is called without the engine's lock: it may query the database). Containers without
        that label are left alone. Returns how many were removed."""
        cutoff = dt.datetime.now(dt.UTC) - older_than
        with _lock:
            candidates = [
                (container.handle, container.labels[LABEL_TASK_EXECUTION])
                for container in _by_handle.values()
                if container.finished_at is not None
                and container.finished_at <= cutoff
                and container.labels.get(LABEL_TASK_EXECUTION)
                and prunable(container.labels, installation)
            ]
        removed = 0
        for handle, execution in candidates:
            if is_done(execution) and _discard(handle):  # _discard is False if someone removed it meanwhile
                removed += 1
        return removed
