// The recipe without the environment (recipe.spec.mjs), in Vitest's node environment.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: { environment: 'node', include: ['recipe.spec.mjs'] },
})
