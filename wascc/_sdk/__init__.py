"""The C headers of the actor SDK and the provider ABI, copied here at install
time from ``native/include`` (see ``wascc sdk --help``)."""
