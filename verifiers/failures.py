"""Why an environment or a baseline failed: a reason key, a one-line cause, and the fix to try.

Install logs and test logs are long; the line that says what went wrong is rarely the last one
(pip ends every build failure with the same "subprocess-exited-with-error"). These rules read
the whole log, most specific first, and name the cause in words a user can act on, with the
repo-spec override that would fix it where there is one (``system_packages``, ``pre_install``,
``install``, ``python``, ``test_cmd``). Every text that leaves here has its ANSI codes removed.

Not for: deciding whether a run can be judged (``verifiers.sandbox.run_problem``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Explained", "explain_install", "explain_run", "header_package", "strip_ansi", "PLUGIN_FOR_OPTION"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour and cursor codes."""
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class Explained:
    """A failure in three parts: ``key`` for counting, ``cause`` for people, ``fix`` to try."""

    key: str
    cause: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.cause}" + (f" (try: {self.fix})" if self.fix else "")


# C headers -> the Debian package that ships them (the usual suspects; others: `apt-file search`).
_HEADERS = {
    "ffi.h": "libffi-dev", "openssl/ssl.h": "libssl-dev", "openssl/opensslv.h": "libssl-dev",
    "zlib.h": "zlib1g-dev", "bzlib.h": "libbz2-dev", "lzma.h": "liblzma-dev", "yaml.h": "libyaml-dev",
    "libxml/xmlversion.h": "libxml2-dev", "libxml/parser.h": "libxml2-dev", "libxslt/xslt.h": "libxslt1-dev",
    "Python.h": "python3-dev", "sqlite3.h": "libsqlite3-dev", "libpq-fe.h": "libpq-dev", "pg_config.h": "libpq-dev",
    "mysql.h": "default-libmysqlclient-dev", "krb5.h": "libkrb5-dev", "gssapi/gssapi.h": "libkrb5-dev",
    "sasl/sasl.h": "libsasl2-dev", "ldap.h": "libldap2-dev", "jpeglib.h": "libjpeg-dev", "png.h": "libpng-dev",
    "tiffio.h": "libtiff-dev", "freetype/freetype.h": "libfreetype-dev", "ft2build.h": "libfreetype-dev",
    "gmp.h": "libgmp-dev", "mpfr.h": "libmpfr-dev", "mpc.h": "libmpc-dev", "snappy-c.h": "libsnappy-dev",
    "lz4.h": "liblz4-dev", "zstd.h": "libzstd-dev", "curl/curl.h": "libcurl4-openssl-dev",
    "hdf5.h": "libhdf5-dev", "cairo.h": "libcairo2-dev", "portaudio.h": "portaudio19-dev",
    "dbus/dbus.h": "libdbus-1-dev", "systemd/sd-daemon.h": "libsystemd-dev", "libmemcached/memcached.h":
    "libmemcached-dev", "magic.h": "libmagic-dev", "pcap.h": "libpcap-dev", "uuid/uuid.h": "uuid-dev",
    "readline/readline.h": "libreadline-dev", "ncurses.h": "libncurses-dev", "gdbm.h": "libgdbm-dev",
    "geos_c.h": "libgeos-dev", "proj.h": "libproj-dev", "blas.h": "libopenblas-dev", "cblas.h": "libopenblas-dev",
    "leveldb/db.h": "libleveldb-dev", "libusb.h": "libusb-1.0-0-dev", "xxhash.h": "libxxhash-dev",
}

# pytest options that only a plugin knows -> the distribution that provides it.
PLUGIN_FOR_OPTION = {
    "--cov": "pytest-cov", "--cov-report": "pytest-cov", "--cov-config": "pytest-cov", "--no-cov": "pytest-cov",
    "--cov-fail-under": "pytest-cov", "--cov-branch": "pytest-cov", "-n": "pytest-xdist", "--numprocesses": "pytest-xdist",
    "--dist": "pytest-xdist", "--timeout": "pytest-timeout", "--benchmark-skip": "pytest-benchmark",
    "--benchmark-disable": "pytest-benchmark", "--benchmark-only": "pytest-benchmark", "--mypy": "pytest-mypy",
    "--flake8": "pytest-flake8", "--black": "pytest-black", "--isort": "pytest-isort", "--doctest-rst": "pytest-doctestplus",
    "--doctest-plus": "pytest-doctestplus", "--reruns": "pytest-rerunfailures", "--randomly-seed": "pytest-randomly",
    "-p no:randomly": "pytest-randomly", "--hypothesis-profile": "hypothesis", "--hypothesis-show-statistics": "hypothesis",
    "--mpl": "pytest-mpl", "--snapshot-update": "syrupy", "--asyncio-mode": "pytest-asyncio", "--ds": "pytest-django",
    "--reuse-db": "pytest-django", "--nomigrations": "pytest-django", "--html": "pytest-html", "--forked": "pytest-forked",
    "--codeblocks": "pytest-codeblocks", "--memray": "pytest-memray", "--ruff": "pytest-ruff", "--pylint": "pytest-pylint",
    "--record-mode": "pytest-recording", "--block-network": "pytest-recording", "--force-sugar": "pytest-sugar",
    "--testmon": "pytest-testmon", "--instafail": "pytest-instafail", "--describe-prefixes": "pytest-describe",
    "--env": "pytest-env", "--check-links": "pytest-check-links", "--nbval": "nbval", "--doctest-cython": "pytest-cython",
    "--sanitize-with": "nbval", "--remote-data": "pytest-remotedata", "--arraydiff": "pytest-arraydiff",
    "--typeguard-packages": "typeguard", "--strict-config": "", "--import-mode": "",
}


def header_package(header: str) -> str | None:
    """The Debian package that ships a C header, where we know it."""
    if header in _HEADERS:
        return _HEADERS[header]
    base = header.rsplit("/", 1)[-1]
    return _HEADERS.get(base)


def _m(pattern: str, text: str, flags: int = re.M) -> re.Match[str] | None:
    return re.search(pattern, text, flags)


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    skip = ("subprocess-exited-with-error", "metadata-generation-failed", "note:", "hint:", "×", "╰─>", "│",
            "[end of output]", "error: failed-wheel-build", "ERROR: Failed to build", "failed-wheel-build")
    picked = [ln for ln in lines if ("error" in ln.lower() or "Error" in ln) and not any(s in ln for s in skip)]
    return (picked[-1] if picked else lines[-1] if lines else "no output")[:240]


def explain_install(log: str, *, python: str = "") -> Explained:
    """The cause of a failed image build, from its log (most specific rule first)."""
    text = strip_ansi(log)
    if m := _m(r"fatal error: ([\w./+-]+\.h): No such file or directory", text):
        pkg = header_package(m.group(1))
        fix = f"system_packages: [{pkg}]" if pkg else f"system_packages: [the Debian package with {m.group(1)}]"
        return Explained("missing_header", f"a C extension needs the header {m.group(1)}, not installed", fix)
    if _m(r"(command '[\w./-]*(gcc|cc|g\+\+|c\+\+|clang)' failed|unable to execute '[\w./-]*(gcc|cc|g\+\+)'|"
          r"(gcc|cc|g\+\+|x86_64-linux-gnu-gcc): (command )?not found|No CMAKE_C_COMPILER could be found|"
          r"error: Microsoft Visual C\+\+|C compiler cannot create executables)", text):
        return Explained("missing_compiler", "a C extension needs a C compiler and the base image has none",
                         "system_packages: [build-essential]")
    if m := _m(r"(?:can't find Rust compiler|rustc.*not found|error: could not find `?cargo`?|"
               r"Cargo, the Rust package manager, is not installed)", text):
        return Explained("missing_rust", "the build needs a Rust toolchain (cargo/rustc), not in the image",
                         "system_packages: [cargo, rustc]")
    if _m(r"(CMake must be installed|cmake: (command )?not found|Could not find CMake|No such file or directory: 'cmake')",
          text):
        return Explained("missing_cmake", "the build needs CMake, not in the image",
                         "pre_install: [python -m pip install cmake]")
    if m := _m(r"(?:Package|ERROR: Package) '([^']+)' requires a different Python: ([\w.+]+) not in '([^']+)'", text):
        return Explained("python_unsatisfiable",
                         f"{m.group(1)} requires Python {m.group(3)}; the image has {m.group(2)}",
                         "python: a version that satisfies it (3.9, 3.11, 3.13 from Debian)")
    if m := _m(r"(?:Ignored the following versions that require a different python version|"
               r"requires-python|Requires-Python)[^\n]*\n(?:.*\n)*?.*No matching distribution found for (\S+)", text):
        return Explained("python_unsatisfiable",
                         f"no release of {m.group(1)} supports this Python ({python or 'the image'})",
                         "python: another version, or pre_install: [pin an older release]")
    if m := _m(r"(?:Could not resolve host|Failed to establish a new connection|Temporary failure in name "
               r"resolution|fatal: unable to access '([^']+)'|Network is unreachable|Connection refused)", text):
        where = _m(r"(?:git clone|Cloning) (?:--\S+ )*(\S+)", text)
        what = (where.group(1) if where else m.group(1)) or "a host"
        return Explained("network_needed", f"the install fetches from {what}, which cannot be reached here",
                         "install: commands that use only PyPI (drop VCS requirements)")
    if m := _m(r"(?:Cloning|git clone) (?:--\S+ )*(https?://\S+|git@\S+)", text):
        return Explained("network_needed", f"the install clones {m.group(1)} (only PyPI is reachable)",
                         "install: commands that use only PyPI (drop VCS requirements)")
    if _m(r"(setuptools.scm was unable to detect version|setuptools-scm was unable to detect version|"
          r"unable to detect version for|LookupError: Error getting the version from source `vcs`)", text):
        return Explained("scm_version", "the version comes from git tags and the snapshot has none",
                         "pre_install: [] with SETUPTOOLS_SCM_PRETEND_VERSION set in install")
    if m := _m(r"(?:ERROR: )?Invalid requirement: '?([^'\n]+)'?", text):
        return Explained("invalid_requirement", f"pip rejects the requirement {m.group(1).strip()[:120]!r}",
                         "install: the commands without it")
    if m := _m(r"(?:ERROR: )?(?:Could not open requirements file|No such file or directory): '?([^'\n]+)'?", text):
        if "requirements" in m.group(1) or ".txt" in m.group(1):
            return Explained("missing_requirements_file", f"a requirements file is missing from the tree: {m.group(1)}",
                             "install: the commands without it")
    if m := _m(r"ResolutionImpossible|conflicting dependencies|Cannot install .* because these package versions "
               r"have conflicting dependencies", text):
        who = _m(r"The conflict is caused by:\s*\n\s*(.+)", text)
        return Explained("dependency_conflict",
                         "pip found no set of versions that satisfies every requirement"
                         + (f" ({who.group(1).strip()[:120]})" if who else ""),
                         "pre_install: [a pin that resolves it], or install: your own commands")
    if m := _m(r"No matching distribution found for ([^\s]+)", text):
        return Explained("requirement_unavailable", f"{m.group(1)} is not on the package index (for this Python)",
                         "install: the commands without it")
    if m := _m(r"ModuleNotFoundError: No module named '([\w.]+)'", text):
        return Explained("build_dependency_missing",
                         f"the build imports {m.group(1)!r}, which its build requirements do not declare",
                         f"pre_install: [python -m pip install {m.group(1).split('.')[0]}] and an install "
                         "with --no-build-isolation")
    if m := _m(r"(?:E: Unable to locate package|E: Package '[^']+' has no installation candidate) ?(\S*)", text):
        return Explained("system_package_unknown", f"apt has no package {m.group(1) or 'named in system_packages'}",
                         "system_packages: Debian package names")
    return Explained("install_failed", _last_error_line(text), "install: commands that work (see the log tail)")


def explain_run(status: str, reason: str, log_tail: str) -> Explained | None:
    """The cause of a baseline's collection or run that cannot be trusted, or None when nothing is known."""
    text = strip_ansi(log_tail)
    if m := _m(r"error: unrecognized arguments: (.+)", text):
        args = m.group(1).split()
        plugins = sorted({PLUGIN_FOR_OPTION.get(a.split("=", 1)[0], "") for a in args} - {""})
        fix = f"pre_install: [python -m pip install {' '.join(plugins)}]" if plugins else \
            "test_cmd: a pytest command with -o addopts= (without the option)"
        return Explained("missing_pytest_plugin",
                         f"the suite's pytest options ({' '.join(args)[:80]}) need a plugin that is not installed"
                         + (f": {', '.join(plugins)}" if plugins else ""), fix)
    if m := _m(r"required plugins? not (?:found|installed)[^\n]*?:?\s*(.*)|Missing required plugins: (.+)", text):
        names = (m.group(1) or m.group(2) or "").strip()
        return Explained("missing_pytest_plugin", f"the suite requires pytest plugins that are not installed: {names}",
                         f"pre_install: [python -m pip install {names}]")
    if m := _m(r"ImportError while loading conftest '([^']+)'.*?\n(?:.*\n)*?E\s+(\w+Error: .+)", text):
        mod = _m(r"No module named '([\w.]+)'", m.group(2))
        fix = f"pre_install: [python -m pip install {mod.group(1).split('.')[0]}]" if mod else ""
        return Explained("conftest_import_error", f"{m.group(1).removeprefix('/testbed/')} fails to import: "
                         f"{m.group(2).strip()[:160]}", fix)
    if status == "no_tests":
        return Explained("no_tests_found", "pytest collected no tests from where the suite's configuration points",
                         "test_paths: [the folder with the tests], or test_cmd")
    if status == "collection_error":
        mod = _m(r"No module named '([\w.]+)'", reason + "\n" + text)
        if mod:
            return Explained("test_dependency_missing", f"test modules import {mod.group(1)!r}, which is not installed",
                             f"pre_install: [python -m pip install {mod.group(1).split('.')[0]}]")
        return Explained("collection_error", strip_ansi(reason)[:240])
    if status == "aborted" and "usage error" in reason:
        line = _m(r"^(?:ERROR|error): (.+)$", text)
        return Explained("pytest_usage_error", f"pytest refused its configuration: {line.group(1)[:200] if line else reason}",
                         "test_cmd: a pytest command that works here")
    return None
