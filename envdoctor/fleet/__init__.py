"""``envdoctor fleet``: check a whole cluster, find the odd node, prove multi-node training.

Modules: node (what one node writes: ``check --write`` files, the ``--health`` line), hostlist (Slurm
host lists), report (the fleet verdict from a folder of node files), slurm (``fleet run`` / ``fleet
smoke`` through srun and sbatch), k8s (an Indexed Job manifest). envdoctor never fans out over SSH:
the cluster's own engine starts one check per node, and ``fleet report`` reads what they wrote.
"""
