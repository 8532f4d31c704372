"""Recipes: how training stacks cast and multiply, as data (above casts/ and engine/).

* `recipe` - the one description: `LinearGemm` (the casts of A and B as `BlockCast`
  values, a kernel, where the scales go) and `LinearRecipe` (a Linear layer's three
  GEMMs); `gemm_recipe` builds a GEMM recipe from flat fields (`fp8sim.Recipe`);
* `catalog` - the named recipes: `LINEAR_RECIPES`, `GEMM_RECIPES` (`fp8sim.RECIPES`);
* `layers` - `linear`: one nn.Linear forward and backward, bit for bit;
* `pipeline` - `quantized_gemm`: float inputs to one FP8 GEMM by a GEMM recipe.
"""
