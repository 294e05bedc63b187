"""A viewer account and API token for a benchmark's private `hazmon run` (every API call needs one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def viewer_token(env: dict[str, str], cwd: Path, username: str = "bench") -> str:
    """Create `username` (viewer, all sites) in HAZMON_DATA_DIR through the CLI; return a new token."""
    cli = [sys.executable, "-m", "hazmon.cli", "--log-level", "WARNING", "user"]
    subprocess.run(
        [*cli, "add", username, "--role", "viewer", "--all-sites", "--password-stdin"],
        input="bench-password-0123\n", text=True, env=env, check=True, cwd=cwd, capture_output=True,
    )  # fmt: skip
    done = subprocess.run(
        [*cli, "token", username, "--name", "bench"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=cwd,
    )
    return done.stdout.strip()
