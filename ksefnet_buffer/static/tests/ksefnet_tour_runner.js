/** @odoo-module **/
/**
 * Runs a tour of the "web_tour.tours" registry step by step, for Odoo installations without the web_tour
 * addon (HttpCase.start_tour needs it; the tests fall back to this runner through browser_js). It knows the
 * subset of the step format the KSeFNet tours use: `trigger` (a CSS selector, optionally ending in
 * `:contains(text)`), `run: "click"`, and `run` as a function (a check that throws when it fails).
 */
import { registry } from "@web/core/registry";

const TIMEOUT = 15000;

function visible(element) {
    return !!(element.offsetWidth || element.offsetHeight || element.getClientRects().length);
}

function find(trigger) {
    const match = trigger.match(/^(.*):contains\((["']?)(.*)\2\)$/);
    const selector = match ? match[1] : trigger;
    const text = match ? match[3] : null;
    return [...document.querySelectorAll(selector)].find(
        (element) => visible(element) && (text === null || element.textContent.includes(text))
    );
}

async function waitFor(trigger) {
    const start = Date.now();
    while (Date.now() - start < TIMEOUT) {
        const element = find(trigger);
        if (element) {
            return element;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`tour step: nothing matches ${trigger}`);
}

async function runTour(name) {
    const tour = registry.category("web_tour.tours").get(name);
    for (const [index, step] of tour.steps().entries()) {
        const element = await waitFor(step.trigger);
        if (step.run === "click") {
            element.click();
        } else if (typeof step.run === "function") {
            await step.run.call({ anchor: element });
        }
        console.log(`tour ${name}: step ${index + 1} ${step.content || step.trigger} ok`);
        await new Promise((resolve) => setTimeout(resolve, 300));
    }
    console.log("test successful");
}

window.ksefnetRunTour = (name) => runTour(name).catch((error) => console.error(`tour ${name} failed: ${error.message}`));
