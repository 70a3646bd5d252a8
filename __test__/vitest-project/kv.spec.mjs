import { kvTests } from './tests.mjs'

kvTests()
