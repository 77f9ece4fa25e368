"""The console scripts, one thin module each: parse, call the stage below, print."""
