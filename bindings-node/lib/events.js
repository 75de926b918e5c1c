'use strict'
// Where the errors of event-driven objects go: ReportingEmitter, the base of
// Server, Connection, Client and Subscriber, sends what their listeners throw
// (and the rejections of async listeners) to 'error', or when nobody listens
// for it, to a process warning: never an uncaught exception.

const { EventEmitter } = require('node:events')

/**
 * Gives an error to `emitter`'s 'error' listeners, or when there is none (or
 * the listener throws), to a process warning.
 * @param {EventEmitter} emitter
 * @param {unknown} err
 * @param {...unknown} rest
 */
function reportTo(emitter, err, ...rest) {
  if (emitter.listenerCount('error') > 0) {
    try {
      emitter.emit('error', err, ...rest)
      return
    } catch (again) {
      err = again
    }
  }
  const e = /** @type {any} */ (err)
  process.emitWarning(`shmsock: unhandled error in ${emitter.constructor.name}: ${e && e.stack ? e.stack : e}`)
}

class ReportingEmitter extends EventEmitter {
  constructor() {
    super({ captureRejections: true })
  }

  /**
   * Emits `event`; what a listener throws is reported.
   * @param {string | symbol} event
   * @param {...unknown} args
   */
  _emitSafe(event, ...args) {
    try {
      this.emit(event, ...args)
    } catch (err) {
      this._reportEvent(err, event, args)
    }
  }

  /**
   * A rejected promise of an async listener (captureRejections).
   * @param {unknown} err
   * @param {string | symbol} event
   * @param {...unknown} args
   */
  [Symbol.for('nodejs.rejection')](err, event, ...args) {
    this._reportEvent(err, event, args)
  }

  /**
   * Reports a listener's error for `event` (a subclass may say which
   * connection it concerns).
   * @param {unknown} err
   * @param {string | symbol} event
   * @param {unknown[]} args
   */
  _reportEvent(err, event, args) {
    reportTo(this, err)
  }
}

module.exports = { ReportingEmitter, reportTo }
