"""``python -m eegkit.pipeline run|render|report``: see :mod:`eegkit.pipeline.cli`."""

import sys

from eegkit.pipeline.cli import main

sys.exit(main())
