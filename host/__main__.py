import sys

from .cli_common import quiet_native_logs

quiet_native_logs()             # before .cli imports anything that brings in gRPC

from .cli import main  # noqa: E402

sys.exit(main())
