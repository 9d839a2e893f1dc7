"""`python -m simgan_tf.data ...`: runs the data command line (cli.py)."""

from simgan_tf.data.cli import main

if __name__ == "__main__":
    main()
