# os._exit at import (nothing can be graded: the report names the file).
import os

os._exit(0)
