"""The manager: takes tasks over HTTP, places them on workers, mirrors their state."""
