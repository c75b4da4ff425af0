"""tuco's command-line interface: one thin module per verb (parse -> one library call -> print)."""
