"""The embedded demo pair (work in progress, issue 3): its data builders and training recipe.

Not yet shipped: no trained checkpoints and no `tuco demo` command. What is here is tested on a tiny
budget (tests/test_demo_recipe.py) so that the full run can build on it.
"""
