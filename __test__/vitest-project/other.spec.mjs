// A second file, so that files sharing a worker (--no-isolate) are covered.
import { kvTests } from './tests.mjs'

kvTests()
