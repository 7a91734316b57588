//! Templates saved across restarts (`--state-dir`): placeholder, filled below.
