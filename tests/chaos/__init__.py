"""The chaos suite: real djs processes under crashes (see README.md in this folder)."""
