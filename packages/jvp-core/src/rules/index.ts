import { convRules } from './conv.js';
import { elementwiseRules } from './elementwise.js';
import { linalgRules } from './linalg.js';
import { nnRules } from './nn.js';
import { reductionRules } from './reductions.js';
import { registerTable } from './registry.js';
import { shapeRules } from './shape.js';

for (const table of [elementwiseRules, reductionRules, shapeRules, linalgRules, nnRules, convRules]) {
  registerTable(table);
}

export {
  getRule,
  type JvpRule,
  type JvpRuleContext,
  registerJvpRule,
  type RuleTable,
  supportedKernels,
} from './registry.js';
