"""Run inside the guest by init.sh: become the job's process (its cwd, env and argv).

Usage: PYTHON guest.py RUN_DIR/job.json
"""

import json
import os
import sys


def main() -> None:
    with open(sys.argv[1]) as f:
        job = json.load(f)
    os.chdir(job["cwd"])
    os.execve(job["argv"][0], job["argv"], job["env"])


if __name__ == "__main__":
    main()
