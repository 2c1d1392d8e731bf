// Small DOM helpers shared by the page's modules.

import { isNum } from './format.js';

/** The first element matching `selector`. */
export const $ = (selector, root = document) => root.querySelector(selector);

/** A new element with an optional class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const FLASH_CLASSES = ['flash', 'up', 'down', 'new'];

/** How a value moved, for the flash's colour: `up`, `down`, or `new` (no number to compare). */
export const direction = (before, after) =>
  !isNum(before) || !isNum(after) || before === after ? 'new' : after > before ? 'up' : 'down';

/** Restarts a node's flash animation, even if it is still running from the last change. */
export function flash(node, how) {
  node.classList.remove(...FLASH_CLASSES);
  void node.offsetWidth; // a style flush, so the re-added class starts the animation anew
  node.classList.add('flash', how);
}

/** Takes the flash classes off a node once its animation ends, so only live flashes carry them. */
export function clearFlashesWhenDone() {
  document.addEventListener('animationend', (event) => {
    if (event.animationName.startsWith('flash')) event.target.classList.remove(...FLASH_CLASSES);
  });
}
