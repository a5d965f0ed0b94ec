"""Miscellaneous utilities shared by the whole code base (no TensorFlow here)."""

class EasyDict(dict):
    """A dict whose items can also be read and written as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]


class UserError(Exception):
    """Bad input from the user (a wrong path, an unknown option, a corrupt file).

    Command-line tools catch it once in main(), print its message as one line and exit 1.
    Programmer errors stay asserts."""
