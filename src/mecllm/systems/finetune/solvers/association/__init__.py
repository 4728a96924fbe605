"""Association steps (which server each user joins, and phi): pricing, the paper's relaxation,
the exact MILP, the scalable threshold scan and the simple rules of the baselines."""
