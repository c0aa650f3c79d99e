"""Secrets never leave in clear: redaction by name and by value shape, through any nesting.

A value is redacted when its *name* says it is a secret (``DB_PASSWORD``,
``api_key``, ``MYSQL_PWD``, ``SLACK_WEBHOOK_URL``, ``--token``) or when its
*text* has a secret's shape (``user:password@`` in a URL, ``AccountKey=...``,
``Bearer ...``, a private-key block, a GitHub / AWS / Slack token). Each
redaction is reported (``Redactions``) so that the record says what was
hidden, never what it was. A name listed in ``keep_in_clear`` (or in
``$YPROV4ML_KEEP_IN_CLEAR``, comma-separated) is left as it is.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

REDACTED = "<redacted>"
KEEP_VARIABLE = "YPROV4ML_KEEP_IN_CLEAR"

# Joined lower-case forms ("db_password" → "dbpassword") that mark a secret anywhere in a name.
_NAME_MARKERS = ("password", "passwd", "passphrase", "secret", "apikey", "accesskey", "privatekey",
                 "accountkey", "sessionkey", "signingkey", "encryptionkey", "masterkey", "clientkey", "sshkey",
                 "credential", "connectionstring", "connstr", "webhook", "netrc", "authorization")
# Whole tokens of a name ("MYSQL_PWD" → mysql, pwd) that mark a secret; whole tokens only, so that
# "tokenizer", "max_tokens" or "author" stay in clear.
_NAME_TOKENS = {"pwd", "auth", "dsn", "jwt", "token", "cookie"}
_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])")

# (pattern, replacement, kind, anchors): a pattern runs only on text holding one of its anchors (lower-cased
# for the case-blind ones) — a plain substring test, so that long texts without secrets cost little.
_VALUE_SHAPES = (
    # scheme://user:password@host — greedy up to the last '@' before the host, so '@' in a password is covered
    (re.compile(r"(?P<keep>[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s?#]*@"), r"\g<keep>" + REDACTED + "@", "URL credentials",
     ("://",)),
    (re.compile(r"(?i)(?P<keep>\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|sig|"
                r"client_secret|access_token|refresh_token)=)[^;&\s]+"), r"\g<keep>" + REDACTED, "key=value secret",
     ("key=", "signature=", "password=", "pwd=", "sig=", "secret=", "token=")),
    (re.compile(r"(?i)(?P<keep>\b(?:bearer|basic|token)\s+)[A-Za-z0-9\-._~+/]{8,}=*"), r"\g<keep>" + REDACTED,
     "authorization token", ("bearer", "basic", "token")),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
     REDACTED, "private key", ("-----begin",)),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|AKIA[0-9A-Z]{16}|"
                r"xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_\-]{20,}|hf_[A-Za-z0-9]{30,})\b"), REDACTED,
     "access token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "akia", "xox", "sk-", "hf_")),
    (re.compile(r"(?P<keep>https://hooks\.slack\.com/)\S+"), r"\g<keep>" + REDACTED, "webhook URL",
     ("hooks.slack.com",)),
)


def keep_in_clear_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The names the user declared not secret: ``extra`` and ``$YPROV4ML_KEEP_IN_CLEAR``."""
    names = {n.strip() for n in os.environ.get(KEEP_VARIABLE, "").split(",") if n.strip()}
    return frozenset(names | set(extra))


_NOT_SECRET = {"PWD", "OLDPWD"}  # the shell's working directories, not passwords


@functools.lru_cache(maxsize=8192)  # source code repeats its names: each is judged once
def is_secret_name(name: str) -> bool:
    """True for names that say they hold a secret (API_TOKEN, db_password, MYSQL_PWD, SSH_KEY, ...)."""
    if name.upper() in _NOT_SECRET:
        return False
    joined = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(marker in joined for marker in _NAME_MARKERS):
        return True
    tokens = [t.lower() for t in _TOKEN_SPLIT.split(name) if t]
    return any(t in _NAME_TOKENS for t in tokens) or (len(tokens) > 1 and tokens[-1] == "key")


def redact_text(text: str) -> tuple[str, list[str]]:
    """``text`` with every secret-shaped part replaced, and what kinds were found."""
    found = []
    lower = text.lower()
    for pattern, replacement, kind, anchors in _VALUE_SHAPES:
        if any(anchor in lower for anchor in anchors):
            text, n = pattern.subn(replacement, text)
            if n:
                found.append(kind)
                lower = text.lower()
    return text, found


@dataclass
class Redactions:
    """What one capture hid: where, and why (never the hidden text)."""

    keep: frozenset[str] = frozenset()
    items: list[str] = field(default_factory=list)

    def value(self, where: str, name: str, value: Any) -> Any:
        """``value`` (any nesting of dicts, lists and text) with its secrets replaced; noted under ``where``."""
        if name in self.keep:
            return value
        if is_secret_name(name) and value not in (None, "", REDACTED):
            self.items.append(f"{where} (secret name)")
            return REDACTED
        if isinstance(value, str):
            text, kinds = redact_text(value)
            if kinds:
                self.items.append(f"{where} ({', '.join(kinds)})")
            return text
        if isinstance(value, dict):
            return {k: self.value(f"{where}.{k}", str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(f"{where}[{i}]", name, v) for i, v in enumerate(value))
        return value

    def argv(self, args: list[str]) -> list[str]:
        """A command line with the values of secret options (``--db-password X``, ``--token=Y``) hidden."""
        out: list[str] = []
        hide_next = False
        for arg in args:
            if hide_next:
                out.append(REDACTED)
                hide_next = False
                continue
            if arg.startswith("-") and len(arg) > 1:
                option, eq, _ = arg.partition("=")
                name = option.lstrip("-")
                if name not in self.keep and is_secret_name(name):
                    self.items.append(f"command line: {option} (secret name)")
                    if eq:
                        out.append(f"{option}={REDACTED}")
                    else:
                        out.append(arg)
                        hide_next = True
                    continue
            out.append(self.value("command line argument", "", arg))
        return out


# Secrets written into source code: a quoted literal assigned to a secret name (``API_KEY = "..."``,
# ``{"token": "..."}``), and in comments or docstrings the shell forms ``NAME=value`` and ``--name value``
# (only values with a digit: ``password=DEFAULT_PASSWORD`` or ``token=args.token`` are code, not secrets).
_SOURCE_QUOTED = re.compile(r"""(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)(?P<mid>["']?\s*[:=]\s*[rbuRBU]?)(?P<q>["'])"""
                            r"""(?P<value>[^"'\n]+)(?P=q)""")
_SOURCE_SHELL = re.compile(r"""(?P<name>(?<![\w\-])[A-Za-z_][A-Za-z0-9_]*|--[A-Za-z][A-Za-z0-9_\-]*)"""
                           r"""(?P<mid>=|(?<=[a-z0-9])[ \t]+)"""
                           r"""(?P<value>(?=[^\s"'`;()\[\],]*\d)[^\s"'`;()\[\],]+)(?=[\s"'`;,)\]]|$)""")


# A secret name holds one of these (lower case); a line without any cannot assign a secret name.
_NAME_HINTS = re.compile(r"pass|secret|key|token|auth|pwd|dsn|jwt|cookie|credential|conn|webhook|netrc", re.I)


def redact_source(text: str, keep: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """Source code with the secrets written into it replaced (shapes, and values of secret names)."""
    text, found = redact_text(text)

    def hide(match: re.Match) -> str:
        name = match.group("name").lstrip("-")
        if name in keep or not is_secret_name(name) or match.group("value") == REDACTED:
            return match.group(0)
        found.append("secret name in source")
        quote = match.groupdict().get("q") or ""
        return f"{match.group('name')}{match.group('mid')}{quote}{REDACTED}{quote}"

    def shell(match: re.Match) -> str:
        return hide(match) if match.group("name").startswith("--") or "=" in match.group("mid") else match.group(0)

    # Only the lines holding a hint can hold a secret name: the two patterns run on those alone.
    parts, done = [], 0
    for hint in _NAME_HINTS.finditer(text):
        if hint.start() < done:
            continue  # a second hint on a line already handled
        start = text.rfind("\n", 0, hint.start()) + 1
        end = text.find("\n", hint.end())
        end = len(text) if end < 0 else end
        parts += [text[done:start], _SOURCE_SHELL.sub(shell, _SOURCE_QUOTED.sub(hide, text[start:end]))]
        done = end
    return "".join(parts) + text[done:], sorted(set(found))
