"""doit entry point of a wwstatic project: run `doit` here to build output/.

The task creators live in toolchain/build/tasks.py; `doit list` shows them.
"""

from toolchain.build.tasks import *  # noqa: F403
