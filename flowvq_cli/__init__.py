"""FlowVQ: emotional talking-face videos from one photo, one speech recording and an emotion."""

__version__ = "0.1.0"
